"""The reporting commands: ``catalog``, ``presets``, ``explain``, ``inspect`` and ``bench``."""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from .. import presets
from .._apply import apply
from .._catalog import catalog_records, format_catalog
from .._experiments.models import MODELS
from .common import UsageError, add_command, add_plan_options, parse_shape, plan_from_args
from .common import print_json
from .models import MODEL_HELP, model_factory

__all__ = ["register"]


def _catalog(args: argparse.Namespace) -> int:
    records = catalog_records()
    if args.json:
        print_json(records)
    else:
        print(format_catalog(records))
    return 0


def _summary(name: str) -> str:
    """The first sentence of a preset's description."""
    return presets.describe(name).split("\n", 1)[0].removeprefix(f"{name}: ")


def _presets(args: argparse.Namespace) -> int:
    if args.name:
        text = presets.describe(args.name)
        if args.json:
            print_json({"name": args.name, "description": text})
        else:
            print(text)
        return 0
    records = [{"name": n, "summary": _summary(n)} for n in presets.names()]
    if args.json:
        print_json(records)
    else:
        width = max(len(r["name"]) for r in records)
        print("\n".join(f"{r['name']:<{width}}  {r['summary']}" for r in records))
    return 0


def _explain(args: argparse.Namespace) -> int:
    build = model_factory(args.model)
    torch.manual_seed(args.seed)
    model = build()
    plan = plan_from_args(args) or presets.get("torch")
    if args.checkpoint:
        from torchinit._checkpoints import open_checkpoint, resolve

        with open_checkpoint(args.checkpoint) as checkpoint:
            manifest, _ = resolve(plan, model, args.seed, checkpoint, strict=not args.not_strict)
    else:
        manifest = plan.explain(model, seed=args.seed)
    if args.digest:
        print(manifest.digest())
    elif args.json:
        print_json({"model": args.model, "plan": plan.name, "seed": args.seed,
                    "digest": manifest.digest(), "records": manifest.to_records()})
    else:
        print(manifest.table())
        if args.checkpoint:
            summary = manifest.summary()
            print(f"loaded: {summary['checkpoint']['tensors']} tensors"
                  f" ({summary['checkpoint']['bytes']} bytes); initialized:"
                  f" {summary['plan']['tensors'] + summary['model']['tensors']} tensors"
                  f" ({summary['plan']['bytes'] + summary['model']['bytes']} bytes)")
        print(f"digest: {manifest.digest()}")
    return 0


def _input_embedding(model: nn.Module) -> nn.Embedding | None:
    """The embedding that takes a language model's token ids: transformers'
    ``get_input_embeddings()``, else the first ``nn.Embedding`` registered."""
    get = getattr(model, "get_input_embeddings", None)
    try:
        found = get() if callable(get) else None
    except NotImplementedError:  # PreTrainedModel's answer when it has no base model to ask
        found = None
    if isinstance(found, nn.Embedding):
        return found
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


def _token_ids(args: argparse.Namespace, model: nn.Module,
               generator: torch.Generator) -> torch.Tensor:
    """``--input-ids N,T``: uniform token ids in ``[0, --vocab)``, by default the vocabulary
    of the model's input embedding."""
    try:
        shape = parse_shape(args.input_ids)
    except UsageError:
        shape = ()
    if len(shape) != 2:
        raise UsageError(f"--input-ids {args.input_ids!r}: give the batch size and the sequence"
                         " length, e.g. --input-ids 8,128")
    vocab = args.vocab
    if vocab is None:
        embedding = _input_embedding(model)
        if embedding is None:
            raise UsageError(f"--vocab is needed: {args.model!r} has no nn.Embedding to take"
                             " the vocabulary size from, e.g. --vocab 32000")
        vocab = embedding.num_embeddings
    return torch.randint(0, vocab, shape, generator=generator)


def _inspect_batch(args: argparse.Namespace, model: nn.Module) -> torch.Tensor:
    """Token ids for ``--input-ids``, else a standard normal batch of ``--input-shape``."""
    generator = torch.Generator().manual_seed(args.seed)
    if args.input_ids is not None:
        return _token_ids(args, model, generator)
    shape = (parse_shape(args.input_shape) if args.input_shape
             else (256, *MODELS[args.model].input_shape))
    return torch.randn(shape, generator=generator)


def _inspect(args: argparse.Namespace) -> int:
    from torchinit._diagnostics import inspect

    if args.vocab is not None and args.input_ids is None:
        raise UsageError("--vocab sets the range of token ids: give --input-ids N,T too")
    if args.vocab is not None and args.vocab < 1:
        raise UsageError(f"--vocab {args.vocab}: give the number of token ids, e.g. --vocab"
                         " 32000")
    if args.input_shape is None and args.input_ids is None and args.model not in MODELS:
        raise UsageError(f"--input-shape is needed for {args.model!r} (built-in models have"
                         " a default), e.g. --input-shape 64,784, or --input-ids 8,128 for"
                         " token ids")
    torch.manual_seed(args.seed)
    model = model_factory(args.model)()
    plan = plan_from_args(args)
    manifest = apply(model, plan, seed=args.seed) if plan is not None else None
    batch = _inspect_batch(args, model)
    report = inspect(model, batch, manifest=manifest, label=args.model, seed=args.seed)
    print(report.to_json() if args.json else report.table())
    if args.plot:
        report.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .._experiments.bench import backend, run_benchmark

    cases = run_benchmark(args.n, args.repeats)
    if args.json:
        print_json({"backend": backend(), "threads": torch.get_num_threads(),
                    "repeats": args.repeats, "cases": [c.to_dict() for c in cases]})
        return 0
    print(f"backend {backend()}, {torch.get_num_threads()} thread(s), n={args.n:,} float32,"
          f" median of {args.repeats}")
    rows = [("distribution", "torchinit M/s", "torch op", "torch M/s", "torch time / ours")]
    rows += [(c.distribution, f"{c.n / c.torchinit_seconds / 1e6:.0f}", c.torch_op,
              f"{c.n / c.torch_seconds / 1e6:.0f}", f"{c.ratio:.2f}x") for c in cases]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the commands to the ``torchinit`` parser."""
    cat = add_command(sub, "catalog", "list the initializers, their arguments and formulas",
                      "List every registered initializer with its arguments and formula.",
                      "  torchinit catalog\n  torchinit catalog --json")
    cat.add_argument("--json", action="store_true", help="print JSON records")
    cat.set_defaults(handler=_catalog)

    pre = add_command(sub, "presets", "list the presets, or describe one",
                      "List the presets (ready-made plans) with a line each, or show what one"
                      " does, its options and its source.",
                      "  torchinit presets\n  torchinit presets gpt2\n  torchinit presets --json")
    pre.add_argument("name", nargs="?", help="a preset to describe in full")
    pre.add_argument("--json", action="store_true", help="print JSON")
    pre.set_defaults(handler=_presets)

    exp = add_command(sub, "explain", "show what a plan does to every parameter of a model",
                      "Resolve a plan on a model and print, per parameter, the initializer, the"
                      " fans, the exact std and the winning rule. Nothing is written. Without"
                      " --preset or --plan the plan is the 'torch' preset (PyTorch's defaults).",
                      "  torchinit explain mlp --preset keras\n"
                      "  torchinit explain mymodels.py:build --plan plan.yaml --json\n"
                      "  torchinit explain mypackage.models:gpt2_small --preset gpt2"
                      " -o n_layers=12\n"
                      "  torchinit explain deep-relu --preset general-rule --digest")
    exp.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_plan_options(exp)
    exp.add_argument("--checkpoint", metavar="FILE",
                     help="a .safetensors file or *.index.json: show what is loaded from it and"
                          " what the plan initializes (only headers are read)")
    exp.add_argument("--not-strict", action="store_true",
                     help="with --checkpoint: ignore keys the model does not have")
    out = exp.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the manifest as JSON records")
    out.add_argument("--digest", action="store_true",
                     help="print only the manifest's digest (equal digests: equal values)")
    exp.set_defaults(handler=_explain)

    ins = add_command(sub, "inspect", "measure signal propagation through a model",
                      "Run one forward and backward pass of a standard normal batch (or of"
                      " random token ids, for a language model) and print per layer call the"
                      " activation and gradient statistics, measured and predicted, with"
                      " warnings. With --preset or --plan the plan is applied first; otherwise"
                      " the model is inspected as it was built.",
                      "  torchinit inspect deep-relu --preset torch\n"
                      "  torchinit inspect mymodels.py:build --input-shape 64,784"
                      " --plot report.png\n"
                      "  torchinit inspect mymodels.py:tiny_gpt --input-ids 8,128"
                      " --preset gpt2 -o n_layers=4\n"
                      "  torchinit inspect mlp --plan plan.yaml --json")
    ins.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    batch = ins.add_mutually_exclusive_group()
    batch.add_argument("--input-shape", metavar="SHAPE",
                       help="shape of the standard normal input batch, batch size first, e.g."
                            " 64,1,28,28 (default for built-in models: 256,1,28,28)")
    batch.add_argument("--input-ids", metavar="N,T",
                       help="feed N sequences of T token ids (int64, uniform in [0, V)) instead,"
                            " for language models")
    ins.add_argument("--vocab", metavar="V", type=int,
                     help="with --input-ids: the number of token ids V (default: the size of"
                          " the model's input nn.Embedding)")
    add_plan_options(ins)
    ins.add_argument("--plot", metavar="FILE", help="also plot the report (.png or .svg)")
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    ins.set_defaults(handler=_inspect)

    ben = add_command(sub, "bench", "time torchinit's samplers against torch's",
                      "Time uniform, normal and truncated normal sampling of N float32 values,"
                      " torchinit against torch's in-place samplers in the same run.",
                      "  torchinit bench\n  torchinit bench --n 100000000 --repeats 5 --json")
    ben.add_argument("--n", type=int, default=10_000_000, help="values per sample (default 1e7)")
    ben.add_argument("--repeats", type=int, default=3, help="timed runs per case (default 3)")
    ben.add_argument("--json", action="store_true", help="print JSON")
    ben.set_defaults(handler=_bench)
