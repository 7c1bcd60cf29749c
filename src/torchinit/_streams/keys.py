"""Keys: the stable identity of one random stream.

A :class:`Key` names the stream a parameter draws from: a seed, the parameter's canonical
dotted path and, for a sub-stream (one block of a fused parameter, the mask of ``sparse``), the
block names. It is turned into two 32-bit words of a Philox key by BLAKE2b, a stable hash
(never Python's per-process salted ``hash``), so the same key gives the same numbers in every
process, on every machine, in every order of construction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import InitializerError, short_repr

__all__ = ["Key", "as_key"]

_DOMAIN = b"torchinit.key.v1"
_DECIMAL_SEED_BITS = 2048
"""Seeds up to this many bits are hashed as decimal text (at most 617 digits, below the
smallest ``sys.set_int_max_str_digits`` limit, 640); longer ones as two's-complement bytes."""


def _seed_bytes(seed: int) -> bytes:
    """Decimal ASCII (the v1 encoding), or, for huge seeds, ``0x02``, the byte count and the
    little-endian two's-complement bytes. The leading byte tells them apart: decimal text
    starts with a digit or ``-``."""
    if seed.bit_length() <= _DECIMAL_SEED_BITS:
        return str(seed).encode("ascii")
    size = seed.bit_length() // 8 + 1  # room for the sign bit
    return b"\x02" + size.to_bytes(8, "little") + seed.to_bytes(size, "little", signed=True)


def _identity_bytes(path: str, block: tuple[str, ...]) -> bytes:
    """The path and block names, unambiguously.

    Where no part contains ``"#"`` this is the v1 text ``0x00 path#block#...``, so the words
    of every key that v1 could tell apart are unchanged. Otherwise (a parameter literally named
    ``weight_ih_l0#i``, which v1 confused with block ``i`` of ``weight_ih_l0``) it is ``0x01``
    and each part as an 8-byte length and its UTF-8 bytes.
    """
    parts = (path, *block)
    if not any("#" in part for part in parts):
        return b"\x00" + "#".join(parts).encode("utf-8")
    encoded = [part.encode("utf-8") for part in parts]
    return b"\x01" + b"".join(len(e).to_bytes(8, "little") + e for e in encoded)


@dataclass(frozen=True)
class Key:
    """Identity of a counter-based random stream.

    Args:
        seed: Any Python integer (negative, > 64-bit and ``10**5000`` alike).
        path: The canonical dotted path of the parameter, e.g. ``"encoder.layers.0.fc.weight"``.
        block: Names of the sub-stream within the parameter's stream, outermost first; empty
            for the parameter's own stream. Build it with :meth:`child`.

    The Philox key words are ``blake2b(seed, path, block)[:8]`` read as two little-endian
    ``uint32`` (see ``docs/streams.md``); they do not depend on the Python process, platform or
    torch version. ``Key(seed, path)`` and ``Key(seed, path, block)`` are also what
    ``Key(*[seed, path])`` builds from a manifest's JSON.
    """

    seed: int
    path: str = ""
    block: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InitializerError(
                f"Key seed must be an int, got {type(self.seed).__name__} {short_repr(self.seed)}"
            )
        if not isinstance(self.path, str):
            raise InitializerError(
                f"Key path must be a str (a dotted parameter path), got {type(self.path).__name__}"
            )
        if not isinstance(self.block, (tuple, list)) or not all(isinstance(b, str)
                                                                for b in self.block):
            raise InitializerError(
                f"Key block must be a sequence of block names (str), got {short_repr(self.block)}"
            )
        object.__setattr__(self, "block", tuple(self.block))

    @property
    def words(self) -> tuple[int, int]:
        """The two 32-bit Philox key words derived from (seed, path, block)."""
        h = hashlib.blake2b(digest_size=8, person=_DOMAIN[:16])
        h.update(_seed_bytes(self.seed))
        h.update(_identity_bytes(self.path, self.block))
        digest = h.digest()
        return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")

    def child(self, name: str) -> Key:
        """The key of a named sub-stream, e.g. one gate block of a fused parameter.

        It never equals (nor shares words with) the key of another parameter's path, whatever
        characters the path or the name hold.
        """
        if not isinstance(name, str):
            raise InitializerError(f"a sub-stream name must be a str, got {short_repr(name)}")
        return Key(self.seed, self.path, (*self.block, name))

    def __repr__(self) -> str:
        block = f", block={self.block!r}" if self.block else ""
        seed = repr(self.seed) if self.seed.bit_length() <= _DECIMAL_SEED_BITS else \
            short_repr(self.seed)
        return f"Key(seed={seed}, path={self.path!r}{block})"


def as_key(key: Key | int) -> Key:
    """Accept a :class:`Key` or a bare integer seed (path ``""``)."""
    if isinstance(key, Key):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return Key(key, "")
    raise InitializerError(
        f"key must be a torchinit.Key(seed, path) or an int seed, got {type(key).__name__}"
    )
