"""Datasets of the experiments: the embedded digits, MNIST and Fashion-MNIST.

Every dataset is held as one float32 tensor of images in [0, 1] (``(N, 1, 28, 28)``) and one
int64 tensor of labels, loaded once; training indexes these tensors directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, UnknownNameError, suggest
from .idx import find_idx, read_idx
from .synthetic import render_digits

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset", "EMBEDDED_SIZE", "FASHION_CLASSES"]

DATASETS = ("embedded", "mnist", "fashion-mnist")
EMBEDDED_SIZE = 12_000
"""Images in the embedded dataset (9,600 for training and 2,400 for validation)."""
EMBEDDED_SEED = 0
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
"""Fashion-MNIST's class names, in label order (Xiao et al. 2017)."""


@dataclass(frozen=True)
class Split:
    """A training part and a validation part of a dataset."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor

    def standardized(self) -> Split:
        """Both parts shifted and scaled by the training part's pixel mean and std."""
        std, mean = torch.std_mean(self.train_x)
        return Split((self.train_x - mean) / std, self.train_y, (self.val_x - mean) / std,
                     self.val_y)


@dataclass(frozen=True)
class Dataset:
    """Images, labels and class names.

    Attributes:
        name: ``"embedded"``, ``"mnist"`` or ``"fashion-mnist"``.
        images: float32 ``(N, 1, 28, 28)`` in [0, 1].
        labels: int64 ``(N,)`` in ``range(len(classes))``.
        classes: The class names, in label order.
        source: Where the data came from (a directory, or the generator's settings).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def split(self, val_fraction: float, seed: int) -> Split:
        """A random split: ``val_fraction`` of the examples for validation, drawn with ``seed``.

        Raises:
            ConfigError: when either part would be empty.
        """
        n_val = int(round(len(self) * val_fraction))
        if not 0 < n_val < len(self):
            raise ConfigError(f"a validation fraction of {val_fraction} leaves an empty part of"
                              f" the {len(self)} examples of dataset {self.name!r}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        train, val = order[n_val:], order[:n_val]
        return Split(self.images[train], self.labels[train], self.images[val], self.labels[val])

    def describe(self) -> dict[str, Any]:
        """JSON-safe facts: name, size, classes, source."""
        return {"name": self.name, "examples": len(self), "classes": list(self.classes),
                "source": self.source}


def _embedded(limit: int | None) -> Dataset:
    n = EMBEDDED_SIZE if limit is None else min(limit, EMBEDDED_SIZE)
    images, labels = render_digits(n, EMBEDDED_SEED)
    return Dataset("embedded", images, labels, DIGIT_CLASSES,
                   f"torchinit._experiments.synthetic.render_digits(n={n}, seed={EMBEDDED_SEED})")


def _idx_dataset(name: str, data_dir: str | Path | None, limit: int | None) -> Dataset:
    if data_dir is None:
        raise ConfigError(f"dataset {name!r} is read from a directory of IDX files; pass its"
                          " data_dir (--data-dir DIR), e.g. the folder holding"
                          " train-images-idx3-ubyte.gz")
    directory = Path(data_dir).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"data directory {str(directory)!r} does not exist")
    images_path = find_idx(directory, "train-images-idx3-ubyte")
    labels_path = find_idx(directory, "train-labels-idx1-ubyte")
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise ConfigError(f"{str(images_path)!r} holds {images.shape[0]} images but"
                          f" {str(labels_path)!r} {labels.shape[0]} labels")
    if tuple(images.shape[1:]) != (28, 28):
        raise ConfigError(f"{str(images_path)!r}: images of shape {tuple(images.shape[1:])},"
                          f" expected (28, 28) for {name}")
    if labels.numel() and int(labels.max()) > 9:
        raise ConfigError(f"{str(labels_path)!r}: label {int(labels.max())} outside 0-9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    classes = FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    return Dataset(name, images.unsqueeze(1).float().div_(255.0), labels.long(), classes,
                   str(directory))


def load_dataset(name: str = "embedded", data_dir: str | Path | None = None,
                 limit: int | None = None) -> Dataset:
    """Load a dataset's training examples.

    Args:
        name: ``"embedded"`` (rendered by the package, offline), ``"mnist"`` or
            ``"fashion-mnist"`` (read from ``data_dir``: ``train-images-idx3-ubyte`` and
            ``train-labels-idx1-ubyte``, each ``.gz`` or raw; both datasets use the same names).
        data_dir: The directory of the IDX files.
        limit: Keep only the first ``limit`` examples (quick runs).

    Raises:
        UnknownNameError: for another name (with close matches).
        ConfigError: for a missing ``data_dir``, bad files (naming them) or a bad ``limit``.
        FileNotFoundError: for a missing directory or file.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 2):
        raise ConfigError(f"limit must be an int >= 2 (examples to keep), got {limit!r}")
    if name == "embedded":
        return _embedded(limit)
    if name in ("mnist", "fashion-mnist"):
        return _idx_dataset(name, data_dir, limit)
    raise UnknownNameError(f"unknown dataset {name!r}; datasets are {list(DATASETS)}."
                           + suggest(str(name), DATASETS))
