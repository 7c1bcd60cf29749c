"""The ``torchinit`` command line.

Commands: ``catalog``, ``presets``, ``explain``, ``inspect``, ``compare``, ``coordcheck`` and
``bench``. Exit codes: 0 success, 1 failure, 2 usage error. Errors print one line,
``torchinit: error: ...``, on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import TorchinitError
from . import commands, compare, coordcheck
from .common import UsageError

__all__ = ["main"]

EXAMPLES = """\
examples:
  torchinit compare                          train the protocol's MLP with 9 initializations
  torchinit compare --experiment depth --dataset mnist --data-dir DIR
  torchinit catalog                          every initializer with its formula
  torchinit presets                          the ready-made plans
  torchinit explain mlp --preset keras       what a plan does to each parameter
  torchinit inspect deep-relu --preset torch signal propagation, measured and predicted
  torchinit bench                            sampling speed against torch
  torchinit coordcheck --out coord/          activation sizes by width, SP against μP
Each command has --help with more examples.
"""

USER_ERRORS = (TorchinitError, ValueError, OSError, ImportError)
"""Errors from what the user asked for (names, files, data, optional packages): one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchinit", description="Parameter initialization for PyTorch.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"torchinit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    compare.register(sub)
    commands.register(sub)
    coordcheck.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchinit`` command; return its exit code (0 ok, 1 failure, 2 usage)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except UsageError as err:
        if args.debug:
            raise
        print(f"torchinit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("torchinit: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"torchinit: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if args.debug:
            raise
        print(f"torchinit: error: {type(err).__name__}: {err} (--debug shows the traceback)",
              file=sys.stderr)
        return 1
