"""Selector regexes matched in linear time.

Python's ``re`` backtracks, so a pattern such as ``(.|.)*!`` takes time exponential in the
length of the path it searches. A plan (possibly read from a file someone else wrote) must not
be able to hang ``resolve``, so selector regexes use Python's syntax, parsed by Python's own
parser, but are matched by a small automaton instead: the pattern becomes a Thompson NFA, and
the search runs it as a DFA built lazily, one state per distinct set of NFA states met. Each
character of a path costs at most one step over the NFA's states (a dictionary look-up once
that step has been seen), so a search takes time linear in the path's length for every
pattern, and the result equals ``re.search(pattern, path) is not None``.

What needs backtracking, or more than a yes/no answer, is refused when the selector is built:
backreferences, lookahead and lookbehind, conditional groups, word boundaries (``\\b``,
``\\B``), atomic groups and possessive quantifiers, and inline flags other than ``(?s)`` and
``(?x)``. Patterns are at most :data:`MAX_PATTERN_LENGTH` characters and
:data:`MAX_NFA_STATES` states once bounded repeats (``x{2,5}``) are expanded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typeshed has no re._parser; sre_parse is the same module, typed
    import sre_parse as _sre
else:
    try:  # the parser behind re.compile: re._parser from Python 3.11, sre_parse before
        from re import _parser as _sre
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as _sre

import re

from ..errors import ConfigError, short_repr

__all__ = ["LinearRegex", "MAX_PATTERN_LENGTH", "MAX_NFA_STATES"]

MAX_PATTERN_LENGTH = 1000
"""The longest selector regex, in characters."""
MAX_NFA_STATES = 2000
"""The largest automaton a selector regex may compile to (``a{2000}`` is too large)."""
_MAX_DFA_ELEMENTS = 200_000
"""The DFA cache is dropped and rebuilt when its states hold more NFA states than this."""

_CHAR, _SPLIT, _ASSERT, _ACCEPT = range(4)
_START, _END, _END_STRING = 1, 2, 4  # contexts of a position; an assertion needs its bit
_AT = {"AT_BEGINNING": _START, "AT_BEGINNING_STRING": _START, "AT_END": _END,
       "AT_END_STRING": _END_STRING}
_CATEGORIES: dict[str, Callable[[str], bool]] = {
    "CATEGORY_DIGIT": str.isdecimal,
    "CATEGORY_NOT_DIGIT": lambda c: not c.isdecimal(),
    "CATEGORY_SPACE": str.isspace,
    "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
    "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
}
_ALLOWED_FLAGS = _sre.SRE_FLAG_UNICODE | _sre.SRE_FLAG_VERBOSE | _sre.SRE_FLAG_DOTALL
_MAX_NESTING = 100
_REFUSED = {
    "GROUPREF": "backreferences", "GROUPREF_EXISTS": "conditional groups",
    "ASSERT": "lookahead/lookbehind", "ASSERT_NOT": "lookahead/lookbehind",
    "ATOMIC_GROUP": "atomic groups", "POSSESSIVE_REPEAT": "possessive quantifiers",
}


def _never(c: str) -> bool:
    """The test of a state that reads no character (never called: only character states do)."""
    return False


def _equals(lit: str) -> Callable[[str], bool]:
    """The test of a literal character."""
    return lambda c: c == lit


def _differs(lit: str) -> Callable[[str], bool]:
    """The test of a negated literal character."""
    return lambda c: c != lit


def _class_predicate(items: list[tuple[Any, Any]], refuse: Callable[[str], None]
                     ) -> Callable[[str], bool]:
    """The test of one character class ``[...]`` (or ``\\d``, ``\\w``, ...)."""
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []
    categories: list[Callable[[str], bool]] = []
    negate = False
    for op, arg in items:
        name = op.name
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(chr(arg))
        elif name == "RANGE":
            ranges.append(arg)
        elif name == "CATEGORY" and arg.name in _CATEGORIES:
            categories.append(_CATEGORIES[arg.name])
        else:
            refuse(f"the class item {name}")
    frozen = frozenset(chars)

    def test(c: str) -> bool:
        o = ord(c)
        hit = (c in frozen or any(lo <= o <= hi for lo, hi in ranges)
               or any(category(c) for category in categories))
        return hit != negate

    return test


class _NFA:
    """A Thompson NFA built back to front: each construct is compiled with the state that
    follows it, so no state ever needs patching except a loop's own split."""

    def __init__(self, pattern: str, dotall: bool) -> None:
        self.pattern = pattern
        self.dotall = dotall
        self.kind: list[int] = []
        self.out: list[tuple[int, ...]] = []
        self.test: list[Callable[[str], bool]] = []
        self.context: list[int] = []

    def refuse(self, what: str) -> None:
        raise ConfigError(f"selector regex {short_repr(self.pattern)} uses {what}, which"
                          " selector regexes do not support (they run in linear time); use path"
                          " globs, alternatives (a|b) and anchors (^ $) instead")

    def add(self, kind: int, out: tuple[int, ...] = (),
            test: Callable[[str], bool] = _never, context: int = 0) -> int:
        if len(self.kind) >= MAX_NFA_STATES:
            raise ConfigError(f"selector regex {short_repr(self.pattern)} is too large: it"
                              f" compiles to more than {MAX_NFA_STATES} states (large bounded"
                              " repeats such as x{1000} expand to one copy each)")
        self.kind.append(kind)
        self.out.append(out)
        self.test.append(test)
        self.context.append(context)
        return len(self.kind) - 1

    def sequence(self, items: Any, then: int, depth: int) -> int:
        if depth > _MAX_NESTING:
            self.refuse(f"groups nested more than {_MAX_NESTING} deep")
        for op, arg in reversed(list(items)):
            then = self.item(op.name, arg, then, depth)
        return then

    def item(self, name: str, arg: Any, then: int, depth: int) -> int:
        if name == "LITERAL":
            return self.add(_CHAR, (then,), _equals(chr(arg)))
        if name == "NOT_LITERAL":
            return self.add(_CHAR, (then,), _differs(chr(arg)))
        if name == "ANY":
            return self.add(_CHAR, (then,), (lambda c: True) if self.dotall
                            else (lambda c: c != "\n"))
        if name == "IN":
            return self.add(_CHAR, (then,), _class_predicate(arg, self.refuse))
        if name == "BRANCH":
            return self.add(_SPLIT, tuple(self.sequence(alt, then, depth + 1)
                                          for alt in arg[1]))
        if name == "SUBPATTERN":
            _, add_flags, del_flags, body = arg
            if add_flags or del_flags:
                self.refuse("scoped inline flags (?flags:...)")
            return self.sequence(body, then, depth + 1)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):  # lazy or greedy: the same yes/no answer
            low, high, body = arg
            return self.repeat(low, high, body, then, depth + 1)
        if name == "AT" and arg.name in _AT:
            return self.add(_ASSERT, (then,), context=_AT[arg.name])
        if name == "AT":
            self.refuse("word boundaries (\\b, \\B)" if "BOUNDARY" in arg.name else arg.name)
        self.refuse(_REFUSED.get(name, name))
        raise AssertionError  # refuse() raised

    def repeat(self, low: int, high: int, body: Any, then: int, depth: int) -> int:
        if high == _sre.MAXREPEAT:  # body*: a split that loops through the body
            loop = self.add(_SPLIT)
            self.out[loop] = (self.sequence(body, loop, depth), then)
            then = loop
        else:
            for _ in range(high - low):  # optional copies: body?
                then = self.add(_SPLIT, (self.sequence(body, then, depth), then))
        for _ in range(low):
            then = self.sequence(body, then, depth)
        return then


class _DState:
    """One DFA state: the NFA states live before a character (``raw``, not yet closed over
    epsilon moves), its closure for a position inside the path, and the transitions seen."""

    __slots__ = ("raw", "live", "accept", "next")

    def __init__(self, raw: frozenset[int], live: frozenset[int], accept: bool) -> None:
        self.raw, self.live, self.accept = raw, live, accept
        self.next: dict[str, _DState] = {}


class LinearRegex:
    """A selector regex: ``search(text)`` equals ``re.search(pattern, text) is not None``, in
    time linear in ``len(text)``.

    Raises:
        ConfigError: for an invalid pattern, a construct that needs backtracking (see the module
            docstring), or a pattern beyond the size limits, naming the pattern.
    """

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise ConfigError(f"selector regex must be a string, got {short_repr(pattern)}")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise ConfigError(f"selector regex {short_repr(pattern)} has {len(pattern)}"
                              f" characters; the limit is {MAX_PATTERN_LENGTH}")
        try:
            parsed = _sre.parse(pattern)
        except (re.error, OverflowError) as err:
            raise ConfigError(f"selector regex {short_repr(pattern)} is invalid: {err}") from None
        except RecursionError:
            raise ConfigError(f"selector regex {short_repr(pattern)} nests groups too deeply"
                              ) from None
        flags = parsed.state.flags
        nfa = _NFA(pattern, bool(flags & _sre.SRE_FLAG_DOTALL))
        if flags & ~_ALLOWED_FLAGS:
            nfa.refuse("inline flags other than (?s) and (?x)")
        accept = nfa.add(_ACCEPT)
        self.pattern = pattern
        self._nfa = nfa
        self._start = nfa.sequence(parsed, accept, 0)
        self._reset()

    def _reset(self) -> None:
        self._states: dict[frozenset[int], _DState] = {}
        self._size = 0
        self._initial = self._state(frozenset((self._start,)))

    def _closure(self, raw: frozenset[int], context: int) -> tuple[frozenset[int], bool]:
        """The character states reachable from ``raw`` by epsilon moves valid at a position
        with ``context``, and whether the accepting state is among the reachable ones."""
        nfa = self._nfa
        seen: set[int] = set()
        live: list[int] = []
        accept = False
        stack = list(raw)
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            kind = nfa.kind[s]
            if kind == _CHAR:
                live.append(s)
            elif kind == _ACCEPT:
                accept = True
            elif kind == _SPLIT or nfa.context[s] & context:
                stack.extend(nfa.out[s])
        return frozenset(live), accept

    def _state(self, raw: frozenset[int]) -> _DState:
        state = self._states.get(raw)
        if state is None:
            if self._size > _MAX_DFA_ELEMENTS:
                self._states, self._size = {}, 0
            state = _DState(raw, *self._closure(raw, 0))
            self._states[raw] = state
            self._size += len(raw) + len(state.live)
        return state

    def _step(self, live: frozenset[int], char: str) -> _DState:
        """The state after ``char`` from the live character states (the search restarts at
        every position, so the pattern's start is always included)."""
        nfa = self._nfa
        raw = {self._start}
        for s in live:
            if nfa.test[s](char):
                raw.update(nfa.out[s])
        return self._state(frozenset(raw))

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in ``text`` (``re.search`` semantics)."""
        n = len(text)
        state = self._initial
        for p, char in enumerate(text):
            if p == 0 or p >= n - 1:  # where ^, $ (also before a final newline) may hold
                context = (_START if p == 0 else 0) | (_END if char == "\n" and p == n - 1
                                                        else 0)
                live, accept = self._closure(state.raw, context)
                if accept:
                    return True
                state = self._step(live, char)
                continue
            if state.accept:
                return True
            following = state.next.get(char)
            if following is None:
                following = state.next[char] = self._step(state.live, char)
            state = following
        return self._closure(state.raw, _END | _END_STRING | (_START if n == 0 else 0))[1]

    def __reduce__(self) -> tuple[type[LinearRegex], tuple[str]]:  # pickle and deepcopy
        return LinearRegex, (self.pattern,)

    def __repr__(self) -> str:
        return f"LinearRegex({self.pattern!r})"
