"""``torchinit coordcheck``: the coordinate check of the standard parametrization and μP."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .. import presets
from .._experiments import DATASETS, load_dataset
from .._plan import Plan
from ..width import CoordCheck, coord_check, mup
from ..width._coord import DEFAULT_LR, OPTIMIZERS
from ..width.families import HEAD_DIM, AttnScale, mlp, mlp_batch, token_batch, transformer
from .common import UsageError, add_command, positive_float, positive_int, width_list

__all__ = ["register"]

FAMILIES = ("mlp", "transformer")
PARAMETRIZATIONS = ("sp", "mup")
LABELS = {"sp": "SP", "mup": "μP"}
DEFAULT_WIDTHS = {"mlp": (64, 128, 256, 512, 1024, 2048),
                  "transformer": (64, 128, 256, 512)}
DEFAULT_BATCH = {"mlp": 256, "transformer": 16}
SEQ_LEN = 64

DESCRIPTION = f"""\
The coordinate check of Yang et al. (2022), "Tensor Programs V", appendix D.1: train a model
family at several widths for a few steps on one batch and print the mean |x| of every
layer's output and of the logits at each step (step t: after t updates), with its growth from
the smallest to the largest width. Under μP the curves are flat in width; under the standard
parametrization (SP: PyTorch's default initialization, one learning rate) they grow.

Families: mlp (784 -> width -> width -> 10, ReLU) on one batch of images from --dataset,
flattened and standardized; transformer (pre-LN, 2 blocks, heads of {HEAD_DIM}, vocabulary
256; attention scaled by 1/head_dim for μP, 1/sqrt(head_dim) for SP) on random token ids
({SEQ_LEN} per sequence) with next-token targets. μP is relative to the model at
--base-width (default: the smallest width). The default learning rate is
{DEFAULT_LR['adam']:g} for Adam and {DEFAULT_LR['sgd']:g} for SGD."""

EXAMPLES = """\
  torchinit coordcheck
  torchinit coordcheck --dataset mnist --data-dir ~/data/mnist --out coord/
  torchinit coordcheck --family transformer --widths 64,128,256 --parametrization mup
  torchinit coordcheck --optimizer sgd --lr 0.1 --steps 5
"""


def _batch(args: argparse.Namespace, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if args.family == "transformer":
        return token_batch(size, SEQ_LEN, seed=args.seed)
    data = load_dataset(args.dataset or "embedded", args.data_dir)
    if size > len(data):
        raise UsageError(f"--batch-size {size}: the dataset has only {len(data)} examples")
    return mlp_batch(data.images, data.labels, size, seed=args.seed)


def _factory(family: str, parametrization: str) -> Callable[[int], nn.Module]:
    if family == "mlp":
        return mlp
    scale: AttnScale = "mup" if parametrization == "mup" else "sp"
    return lambda width: transformer(width, attn_scale=scale)


def _plan_fn(args: argparse.Namespace, parametrization: str,
             base_width: int) -> Callable[[int], Plan]:
    if parametrization == "sp":
        plan = presets.get("torch")
    else:
        factory = _factory(args.family, "mup")
        plan = mup(lambda: factory(base_width), optimizer=args.optimizer,
                   delta=lambda: factory(2 * base_width))
    return lambda width: plan


def _growth_table(checks: list[CoordCheck]) -> str:
    first = checks[0]
    rows = [("coordinate", *(c.label for c in checks))]
    rows += [(layer, *(f"x{c.growth(layer):.3g}" for c in checks)) for layer in first.layers]
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(s) for c, s in zip(r, sizes)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * s for s in sizes))
    return "\n".join([f"growth from width {first.widths[0]} to {first.widths[-1]} after"
                      f" {first.steps} steps (mean |x| at the largest width / the smallest):",
                      *lines])


def _write(checks: dict[str, CoordCheck], out: Path, family: str) -> None:
    """Write ``<parametrization>.json`` per check and ``coordcheck.png`` (a row per check;
    left out, with a note, without matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, check in checks.items():
        (out / f"{name}.json").write_text(check.to_json() + "\n")
        written.append(f"{name}.json")
    note = None
    if importlib.util.find_spec("matplotlib") is None:
        note = "plot skipped: it needs matplotlib (pip install 'torchinit[plot]')"
    else:
        first, *others = checks.values()
        first.plot(out / "coordcheck.png", *others,
                   title=f"coordinate check: {family}, mean |x| by width after t updates")
        written.append("coordcheck.png")
    print(f"wrote {out}: {', '.join(written)}", file=sys.stderr)
    if note:
        print(f"note: {note}", file=sys.stderr)


def _coordcheck(args: argparse.Namespace) -> int:
    if args.family == "transformer" and (args.dataset or args.data_dir):
        raise UsageError("--dataset and --data-dir choose the images of the mlp family; the"
                         " transformer trains on random token ids")
    if args.data_dir is not None and args.dataset in (None, "embedded"):
        raise UsageError("--data-dir reads MNIST-format files: add --dataset mnist or"
                         " --dataset fashion-mnist")
    widths = args.widths or DEFAULT_WIDTHS[args.family]
    if args.family == "transformer" and any(w % HEAD_DIM for w in widths):
        raise UsageError(f"--widths {','.join(map(str, widths))}: the transformer's widths must"
                         f" be multiples of its head size {HEAD_DIM}")
    base_width = args.base_width or min(widths)
    batch = _batch(args, args.batch_size or DEFAULT_BATCH[args.family])
    chosen = PARAMETRIZATIONS if args.parametrization == "both" else (args.parametrization,)
    checks = {}
    for name in chosen:
        checks[name] = coord_check(_factory(args.family, name), widths,
                                   _plan_fn(args, name, base_width), batch, args.steps,
                                   lr=args.lr, optimizer=args.optimizer, seed=args.seed,
                                   label=LABELS[name])
        print(checks[name].table(), end="\n\n", flush=True)
    print(_growth_table(list(checks.values())), flush=True)
    if args.out:
        _write(checks, Path(args.out), args.family)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``coordcheck`` to the ``torchinit`` parser."""
    cc = add_command(sub, "coordcheck", "check how activations grow with width (SP vs μP)",
                     DESCRIPTION, EXAMPLES)
    cc.add_argument("--family", choices=FAMILIES, default="mlp",
                    help="the model family (default: mlp)")
    cc.add_argument("--widths", type=width_list, metavar="LIST",
                    help="comma-separated widths (default: 64,...,2048 for mlp, 64,...,512 for"
                         " transformer)")
    cc.add_argument("--base-width", type=positive_int, metavar="N",
                    help="the width μP is relative to (default: the smallest width)")
    cc.add_argument("--parametrization", choices=(*PARAMETRIZATIONS, "both"), default="both",
                    help="sp (PyTorch's default init), mup, or both (default)")
    cc.add_argument("--steps", type=positive_int, default=3,
                    help="optimizer updates; steps 0..N are recorded (default 3)")
    cc.add_argument("--lr", type=positive_float,
                    help=f"base learning rate (default {DEFAULT_LR['adam']:g} for adam,"
                         f" {DEFAULT_LR['sgd']:g} for sgd)")
    cc.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                    help="adam (torch.optim.AdamW) or sgd (default: adam)")
    cc.add_argument("--dataset", choices=list(DATASETS),
                    help="mlp family: embedded (default, offline), mnist or fashion-mnist")
    cc.add_argument("--data-dir", metavar="DIR",
                    help="directory of train-images-idx3-ubyte[.gz] and"
                         " train-labels-idx1-ubyte[.gz]")
    cc.add_argument("--batch-size", type=positive_int, metavar="N",
                    help="examples in the batch (default: 256 images, or 16 sequences)")
    cc.add_argument("--seed", type=int, default=0,
                    help="seed of the batch, the models and their initialization (default 0)")
    cc.add_argument("--out", metavar="DIR",
                    help="write sp.json, mup.json and coordcheck.png (a row per"
                         " parametrization, a panel per step) into DIR")
    cc.set_defaults(handler=_coordcheck)
