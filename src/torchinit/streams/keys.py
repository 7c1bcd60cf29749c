"""Keys: the stable identity of one random stream.

A :class:`Key` names the stream a parameter draws from: a seed and the parameter's canonical
dotted path. It is turned into two 32-bit words of a Philox key by BLAKE2b, a stable hash
(never Python's per-process salted ``hash``), so the same (seed, path) gives the same numbers in
every process, on every machine, in every order of construction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import InitializerError

__all__ = ["Key", "as_key"]

_DOMAIN = b"torchinit.key.v1"


@dataclass(frozen=True)
class Key:
    """Identity of a counter-based random stream.

    Args:
        seed: Any Python integer (negative and > 64-bit values are fine).
        path: The canonical dotted path of the parameter, e.g. ``"encoder.layers.0.linear1.weight"``.
            Sub-streams (one block of a fused parameter) extend it with ``"#"``; see :meth:`child`.

    The Philox key words are ``blake2b(domain, seed, path)[:8]`` read as two little-endian
    ``uint32``; they do not depend on the Python process, platform or torch version.
    """

    seed: int
    path: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InitializerError(
                f"Key seed must be an int, got {type(self.seed).__name__} {self.seed!r}"
            )
        if not isinstance(self.path, str):
            raise InitializerError(
                f"Key path must be a str (a dotted parameter path), got {type(self.path).__name__}"
            )

    @property
    def words(self) -> tuple[int, int]:
        """The two 32-bit Philox key words derived from (seed, path)."""
        h = hashlib.blake2b(digest_size=8, person=_DOMAIN[:16])
        h.update(str(self.seed).encode("ascii"))
        h.update(b"\x00")
        h.update(self.path.encode("utf-8"))
        digest = h.digest()
        return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")

    def child(self, name: str) -> Key:
        """The key of a named sub-stream, e.g. one gate block of a fused parameter."""
        return Key(self.seed, f"{self.path}#{name}")


def as_key(key: Key | int) -> Key:
    """Accept a :class:`Key` or a bare integer seed (path ``""``)."""
    if isinstance(key, Key):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return Key(key, "")
    raise InitializerError(
        f"key must be a torchinit.Key(seed, path) or an int seed, got {type(key).__name__}"
    )
