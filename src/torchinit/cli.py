"""The ``torchinit`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .catalog import catalog_records, format_catalog
from .errors import TorchinitError

EXAMPLES = """examples:
  torchinit catalog               list every initializer with its formula
  torchinit catalog --json        the same as JSON records
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchinit",
        description="Parameter initialization for PyTorch.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"torchinit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cat = sub.add_parser(
        "catalog",
        help="list the initializers, their arguments and formulas",
        description="List every registered initializer with its arguments and formula.",
        epilog="example:\n  torchinit catalog --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cat.add_argument("--json", action="store_true", help="print JSON records")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "catalog":
        records = catalog_records()
        print(json.dumps(records, indent=2) if args.json else format_catalog(records))
        return 0
    _parser().print_help()
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchinit`` command. Returns 0 on success, 1 on failure, 2 on usage
    errors."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except TorchinitError as err:
        if args.debug:
            raise
        print(f"torchinit: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
