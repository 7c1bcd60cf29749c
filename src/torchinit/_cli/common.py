"""Helpers shared by the commands: usage errors, plan options, shapes, output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import presets
from ..errors import short_repr
from .._plan import Plan

__all__ = ["UsageError", "add_command", "add_plan_options", "plan_from_args", "parse_shape",
           "print_json", "positive_int", "positive_float", "width_list"]


class UsageError(Exception):
    """A command line that parses but asks for something contradictory (exit code 2)."""


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def width_list(text: str) -> tuple[int, ...]:
    """An argparse type: distinct model widths >= 1 separated by commas."""
    try:
        values = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        values = ()
    if not values or any(w < 1 for w in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 1 separated by commas,"
                                         f" e.g. 128,512,2048, got {text!r}")
    return values


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                help_text: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A sub-command with its description, examples and the ``--debug`` flag."""
    parser = sub.add_parser(name, help=help_text, description=description,
                            epilog="examples:\n" + examples,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    return parser


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """``--preset NAME [--option KEY=VALUE ...] | --plan FILE`` and ``--seed``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", metavar="NAME",
                       help=f"a preset: {', '.join(presets.names())}")
    group.add_argument("--plan", metavar="FILE", help="a plan file (.yaml, .yml, .toml, .json)")
    parser.add_argument("-o", "--option", metavar="KEY=VALUE", action="append", default=[],
                        help="a preset option, e.g. -o n_layers=12 (VALUE is read as JSON,"
                             " else as text); repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of every key (default 0)")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--option {text!r}: write KEY=VALUE, e.g. n_layers=12")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def plan_from_args(args: argparse.Namespace) -> Plan | None:
    """The plan of ``--preset`` (with its ``--option`` values) or ``--plan``; ``None`` for
    neither."""
    if args.option and not args.preset:
        raise UsageError("--option sets options of a preset: give --preset NAME too")
    if args.preset:
        return presets.get(args.preset, **dict(_option(o) for o in args.option))
    if args.plan:
        return Plan.from_file(args.plan)
    return None


def parse_shape(text: str) -> tuple[int, ...]:
    """``"64,1,28,28"`` or ``"64x784"`` as a tuple of positive ints.

    Raises:
        UsageError: naming the text and what would work (a bad option value: exit code 2).
    """
    parts = text.replace("x", ",").replace(" ", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts if p)
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise UsageError(f"--input-shape {short_repr(text)}: give positive integers separated by commas,"
                         " batch size first, e.g. 64,1,28,28")
    return shape


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))
