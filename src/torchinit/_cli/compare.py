"""``torchinit compare``: train with several initializations over seeds and compare."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace

from .._experiments import (
    DATASETS,
    DEFAULT_SCHEMES,
    DEFAULT_SEEDS,
    EXPERIMENTS,
    SCHEMES,
    Outputs,
    experiment_panels,
    load_dataset,
    parse_schemes,
    run_comparison,
    write_outputs,
)
from .._experiments import transfer
from .._experiments.protocol import OPTIMIZERS, SCHEDULES
from .common import UsageError, add_command, positive_float, positive_int, width_list
from .models import MODEL_HELP, model_factory

__all__ = ["register"]

DESCRIPTION = """\
Train a model with each initialization, over several seeds, and report the validation
accuracy (mean and 95% Student-t interval), the last batch's training loss and the loss
curves. The default experiment is the classic protocol: MLP 784-256-128-10 with ReLU and
Dropout(0.2), Adam (lr 1e-3), 2 epochs, batches of 100, an 80/20 split, biases zero. The
depth experiments train plain deep networks (30-layer ReLU, 100-layer tanh) for one epoch of
SGD with momentum (learning rate decaying linearly to 0), and add a diagnostics report of
each initial network. The mup experiment reproduces μTransfer (Yang et al. 2022, "Tensor
Programs V", Figures 1 and 3): MLPs 784-w-w-10 of widths 128..2048 trained over a log grid of
learning rates under the standard parametrization (PyTorch's default init, one learning rate)
and under μP (ti.mup relative to width 128, per-layer learning rates); it reports the best
learning rate per width and, with --out, plots the loss against the learning rate.

Initializations (--init, comma-separated): a built-in scheme (see --list-inits), a preset
name or a plan file. The default dataset is rendered by the package itself (offline; the
default comparison takes well under a minute on two cores); MNIST and Fashion-MNIST are read
from the IDX files in --data-dir."""

EXAMPLES = """\
  torchinit compare
  torchinit compare --dataset fashion-mnist --data-dir ~/data/fashion --seeds 5 --out results/
  torchinit compare --init general-rule,kaiming,lsuv,my_plan.yaml --model convnet
  torchinit compare --experiment depth --dataset mnist --data-dir ~/data/mnist --out depth/
  torchinit compare --experiment mup --dataset mnist --data-dir ~/data/mnist --out mup/
  torchinit compare --experiment mup --widths 128,512 --lrs 2^-12..2^-6 --limit 4000
  torchinit compare --list-inits
"""


def _lrs(text: str) -> tuple[float, ...]:
    try:
        return transfer.parse_lrs(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _list_inits() -> int:
    width = max(len(name) for name in SCHEMES)
    for name, scheme in SCHEMES.items():
        default = "*" if name in DEFAULT_SCHEMES else " "
        print(f"{default} {name:<{width}}  {scheme.label}: {scheme.description}")
    print("(* compared by default; a preset name or a plan file also works)")
    return 0


def _report(text: str, out: str | None, quiet: bool,
            write: Callable[[str], Outputs]) -> None:
    print(text, flush=True)
    if out:
        outputs = write(out)
        if not quiet:
            names = ", ".join(f.name for f in outputs.files)
            print(f"wrote {out}: {names}", file=sys.stderr)
            for note in outputs.notes:
                print(f"note: {note}", file=sys.stderr)


def _transfer(args: argparse.Namespace) -> int:
    given = [flag for flag, value in (("--init", args.init), ("--model", args.model),
                                      ("--lr", args.lr)) if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: the mup experiment compares SP and μP on its own"
                         " MLPs over a grid of learning rates; set the grid with --lrs and the"
                         " widths with --widths")
    dataset = load_dataset(args.dataset, args.data_dir, args.limit)
    changes = {"epochs": args.epochs, "batch_size": args.batch_size,
               "optimizer": args.optimizer, "schedule": args.schedule}
    config = replace(transfer.TRANSFER_CONFIG,
                     **{k: v for k, v in changes.items() if v is not None})
    result = transfer.run_transfer(dataset, args.widths or transfer.DEFAULT_WIDTHS,
                                   args.lrs or transfer.DEFAULT_LRS, config,
                                   args.seeds or transfer.DEFAULT_SEEDS, args.seed,
                                   progress=False if args.quiet else None)
    _report(result.to_json() if args.json else result.table(), args.out, args.quiet,
            lambda out: transfer.write_transfer(result, out))
    return 0


def _compare(args: argparse.Namespace) -> int:
    if args.list_inits:
        return _list_inits()
    if args.data_dir is not None and args.dataset == "embedded":
        raise UsageError("--data-dir reads MNIST-format files: add --dataset mnist or"
                         " --dataset fashion-mnist")
    if args.experiment == transfer.EXPERIMENT:
        return _transfer(args)
    given = [flag for flag, value in (("--widths", args.widths), ("--lrs", args.lrs))
             if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)} set the grid of the mup experiment: add"
                         " --experiment mup")
    schemes = [s.name for s in parse_schemes(args.init)] if args.init else None
    model = (args.model, model_factory(args.model)) if args.model else None
    panels = experiment_panels(args.experiment, schemes, model, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                               schedule=args.schedule)
    dataset = load_dataset(args.dataset, args.data_dir, args.limit)
    seeds = args.seeds or DEFAULT_SEEDS[args.experiment]
    comparison = run_comparison(args.experiment, dataset, panels, seeds, args.seed,
                                progress=False if args.quiet else None)
    _report(comparison.to_json() if args.json else comparison.table(), args.out, args.quiet,
            lambda out: write_outputs(comparison, out))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compare`` to the ``torchinit`` parser."""
    cmp = add_command(sub, "compare", "compare initializations by training with each",
                      DESCRIPTION, EXAMPLES)
    cmp.add_argument("--experiment", choices=[*EXPERIMENTS, transfer.EXPERIMENT],
                     default="protocol",
                     help="what to run (default: protocol; mup: μTransfer, SP against μP over"
                          " widths and learning rates)")
    cmp.add_argument("--init", metavar="LIST",
                     help="comma-separated initializations (default: the experiment's own;"
                          f" for protocol {','.join(DEFAULT_SCHEMES)})")
    cmp.add_argument("--list-inits", action="store_true",
                     help="list the built-in initializations and exit")
    cmp.add_argument("--dataset", choices=list(DATASETS), default="embedded",
                     help="embedded (default, offline), mnist or fashion-mnist")
    cmp.add_argument("--data-dir", metavar="DIR",
                     help="directory of train-images-idx3-ubyte[.gz] and"
                          " train-labels-idx1-ubyte[.gz]")
    cmp.add_argument("--model", metavar="MODEL",
                     help="replace the experiment's model: " + MODEL_HELP + "; it takes"
                          " (N, 1, 28, 28) images and returns 10 logits")
    cmp.add_argument("--seeds", type=positive_int, metavar="K",
                     help="runs per initialization (per grid point for mup), seeds"
                          " SEED..SEED+K-1 (default: 3 for protocol, 1 for the depth"
                          " experiments and mup)")
    cmp.add_argument("--seed", type=int, default=0,
                     help="first seed; also draws the train/validation split (default 0)")
    cmp.add_argument("--epochs", type=positive_int,
                     help="replace the number of epochs")
    cmp.add_argument("--batch-size", type=positive_int, help="replace the batch size")
    cmp.add_argument("--lr", type=positive_float, help="replace the learning rate")
    cmp.add_argument("--optimizer", choices=OPTIMIZERS, help="replace the optimizer")
    cmp.add_argument("--schedule", choices=SCHEDULES,
                     help="replace the learning-rate schedule (linear: decays to 0 over the run)")
    cmp.add_argument("--widths", type=width_list, metavar="LIST",
                     help="mup: hidden widths, comma-separated (default:"
                          f" {','.join(map(str, transfer.DEFAULT_WIDTHS))})")
    cmp.add_argument("--lrs", type=_lrs, metavar="LIST",
                     help="mup: learning rates, comma-separated numbers, powers 2^-10 or"
                          " ranges 2^-14..2^-4 (every power of 2 between; default 2^-14..2^-4)")
    cmp.add_argument("--limit", type=positive_int, metavar="N",
                     help="use only the first N examples of the dataset (quick runs)")
    cmp.add_argument("--out", metavar="DIR",
                     help="write results.json, results.md and PNG plots into DIR")
    cmp.add_argument("--json", action="store_true", help="print all results as JSON")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar and no notes")
    cmp.set_defaults(handler=_compare)
