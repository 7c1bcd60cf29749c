r"""Model families for coordinate checks: the same code built at any width, and their batches.

* :func:`mlp` — 784 -> width -> width -> 10 with ReLU, the multilayer perceptron of the
  coordinate checks of Yang et al. (2022), "Tensor Programs V", appendix D.1 (Figure 5), on
  flattened MNIST images (:func:`mlp_batch`);
* :func:`transformer` — a small pre-LN decoder-only language model (:class:`TransformerLM`)
  on random token ids with next-token targets (:func:`token_batch`).

The transformer grows its width by adding heads of a fixed size (``head_dim=16``:
``n_heads = width / 16``), as GPT-style models do. Its attention scales the logits
:math:`q \cdot k` by :math:`1/d_{head}` when built for μP (``attn_scale="mup"``, the paper's
section 4 and appendix D.3) and by :math:`1/\sqrt{d_{head}}` for the standard
parametrization (``attn_scale="sp"``). :class:`SelfAttention` keeps the factor as the float
attribute ``scaling`` beside ``head_dim``, where ``ti.mup`` looks for it: the ``"sp"`` variant
under ``ti.mup`` warns, the ``"mup"`` one does not.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["mlp", "transformer", "TransformerLM", "Block", "SelfAttention", "mlp_batch",
           "token_batch", "AttnScale", "ATTN_SCALES", "HEAD_DIM", "VOCAB", "MAX_LEN",
           "MNIST_FEATURES", "MNIST_CLASSES"]

AttnScale = Literal["mup", "sp"]
ATTN_SCALES: tuple[AttnScale, ...] = ("mup", "sp")
HEAD_DIM = 16
"""The transformer's head size: its width grows by adding heads."""
VOCAB = 256
"""The transformer's vocabulary: byte-sized token ids."""
MAX_LEN = 128
"""The longest sequence the transformer's position table holds."""
MNIST_FEATURES = 28 * 28
MNIST_CLASSES = 10


def _width(width: object, multiple: int = 1) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1 or width % multiple:
        need = f"a multiple of {multiple}" if multiple > 1 else "an int >= 1"
        raise ConfigError(f"width must be {need}, got {width!r}")
    return width


def mlp(width: int) -> nn.Sequential:
    """The MLP ``784 -> width -> width -> 10`` with ReLU, every Linear with a bias.

    Its modules are named by their part under μP: ``input`` (fan-out grows), ``hidden`` (both
    fans grow), ``readout`` (fan-in grows), with activations ``act1`` and ``act2``. It takes
    flattened images ``(N, 784)`` (:func:`mlp_batch`) and returns 10 logits.

    Raises:
        ConfigError: for a width that is not an int >= 1.
    """
    width = _width(width)
    return nn.Sequential(OrderedDict([
        ("input", nn.Linear(MNIST_FEATURES, width)), ("act1", nn.ReLU()),
        ("hidden", nn.Linear(width, width)), ("act2", nn.ReLU()),
        ("readout", nn.Linear(width, MNIST_CLASSES)),
    ]))


class SelfAttention(nn.Module):
    r"""Causal multi-head self-attention computing
    :math:`\mathrm{softmax}(s\, q k^\top + \mathrm{mask})\, v` with
    ``torch.nn.functional.scaled_dot_product_attention(..., scale=s)``.

    Args:
        width: Model width (a multiple of ``head_dim``).
        head_dim: Size of each head; ``width / head_dim`` heads.
        attn_scale: ``"mup"`` for :math:`s = 1/d_{head}` (μP), ``"sp"`` for
            :math:`s = 1/\sqrt{d_{head}}` (Vaswani et al. 2017).

    Attributes:
        head_dim: The head size (int).
        n_heads: The number of heads.
        scaling: The factor :math:`s` (float), read by
            :func:`~torchinit.width.forward_requirements`.
    """

    def __init__(self, width: int, head_dim: int, attn_scale: AttnScale) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.n_heads = width // head_dim
        self.scaling = 1.0 / head_dim if attn_scale == "mup" else head_dim ** -0.5
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.scaled_dot_product_attention(
            self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x)),
            is_causal=True, scale=self.scaling)
        out: torch.Tensor = self.out(y.transpose(1, 2).reshape(x.shape))
        return out


class Block(nn.Module):
    """A pre-LN transformer block: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))`` with a
    ``width -> 4 width -> width`` GELU feed-forward."""

    def __init__(self, width: int, head_dim: int, attn_scale: AttnScale) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, head_dim, attn_scale)
        self.ln2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(OrderedDict([
            ("up", nn.Linear(width, 4 * width)), ("act", nn.GELU()),
            ("down", nn.Linear(4 * width, width)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        out: torch.Tensor = x + self.ffn(self.ln2(x))
        return out


class TransformerLM(nn.Module):
    """A decoder-only language model: token and position embeddings, pre-LN blocks, a final
    LayerNorm and an untied readout ``Linear(width, vocab, bias=False)``.

    Takes token ids ``(N, T)`` with ``T <= max_len`` and returns logits ``(N, T, vocab)``.
    """

    def __init__(self, width: int, n_blocks: int = 2, head_dim: int = HEAD_DIM,
                 attn_scale: AttnScale = "mup", vocab: int = VOCAB, max_len: int = MAX_LEN
                 ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(max_len, width)
        self.blocks = nn.ModuleList(Block(width, head_dim, attn_scale) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.readout(self.norm(x))
        return logits


def transformer(width: int, *, attn_scale: AttnScale = "mup", n_blocks: int = 2,
                head_dim: int = HEAD_DIM) -> TransformerLM:
    """The pre-LN transformer family at ``width`` (``width / head_dim`` heads of
    ``head_dim``), vocabulary :data:`VOCAB`.

    Args:
        width: Model width, a multiple of ``head_dim``.
        attn_scale: ``"mup"`` (attention logits x 1/head_dim) or ``"sp"`` (x
            1/sqrt(head_dim)); build the ``"sp"`` variant for the standard parametrization.
        n_blocks: Number of blocks.
        head_dim: Head size (fixed across widths).

    Raises:
        ConfigError: for a width that is not a multiple of ``head_dim``, an unknown
            ``attn_scale`` or a bad ``n_blocks``/``head_dim``.
    """
    if attn_scale not in ATTN_SCALES:
        raise ConfigError(f"attn_scale must be one of {ATTN_SCALES}, got {attn_scale!r}")
    for name, value in (("n_blocks", n_blocks), ("head_dim", head_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
    return TransformerLM(_width(width, head_dim), n_blocks, head_dim, attn_scale)


def mlp_batch(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for :func:`mlp`: ``batch_size`` examples drawn without replacement with
    ``seed``, flattened to ``(N, 784)`` and standardized by the batch's pixel mean and std.

    Args:
        images: ``(M, 1, 28, 28)`` or ``(M, 28, 28)`` images, e.g. MNIST's training images.
        labels: ``(M,)`` class labels.
        batch_size: Examples in the batch (at most ``M``).
        seed: Seed of the draw.

    Raises:
        ConfigError: for images that are not 28 x 28, mismatched labels or a bad size.
    """
    if images.ndim < 2 or math.prod(images.shape[1:]) != MNIST_FEATURES:
        raise ConfigError(f"images must be (N, 1, 28, 28) or (N, 28, 28), got shape"
                          f" {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
        raise ConfigError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or not 1 < batch_size <= images.shape[0]:
        raise ConfigError(f"batch_size must be an int in [2, {images.shape[0]}] (the images"
                          f" given), got {batch_size!r}")
    pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    x = images[pick[:batch_size]].reshape(batch_size, MNIST_FEATURES).float()
    std, mean = torch.std_mean(x)
    return (x - mean) / std, labels[pick[:batch_size]].long()


def token_batch(batch_size: int = 16, seq_len: int = 64, vocab: int = VOCAB,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for :func:`transformer`: ``batch_size`` sequences of ``seq_len + 1`` token ids
    drawn uniformly from ``[0, vocab)`` with a generator seeded by ``seed``; the inputs are
    the first ``seq_len`` ids of each, the targets the next ones (next-token prediction).

    Raises:
        ConfigError: for sizes that are not ints >= 1, or ``seq_len`` above the transformer's
            :data:`MAX_LEN`.
    """
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("vocab", vocab)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
    if seq_len > MAX_LEN:
        raise ConfigError(f"seq_len must be at most {MAX_LEN} (the transformer's position"
                          f" table), got {seq_len}")
    ids = torch.randint(0, vocab, (batch_size, seq_len + 1),
                        generator=torch.Generator().manual_seed(seed))
    return ids[:, :-1], ids[:, 1:]
