"""Reader of the IDX files of MNIST and Fashion-MNIST (gzip-compressed or raw).

The format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 TYPE NDIM``, then ``NDIM`` big-endian uint32 dimensions, then the data in row-major
order. Type ``0x08`` is unsigned bytes, the only type these datasets use.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zlib
from pathlib import Path

import torch

from ..errors import ConfigError

__all__ = ["read_idx", "find_idx"]

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # bytes read (and decompressed) at a time


def find_idx(directory: Path, stem: str) -> Path:
    """The file ``stem.gz`` or ``stem`` in ``directory`` (gzip preferred).

    Raises:
        FileNotFoundError: naming both file names looked for.
    """
    for name in (f"{stem}.gz", stem):
        path = directory / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {stem}.gz or {stem} in {str(directory)!r}; the directory must"
                            " hold the standard IDX files (as downloaded, gzip or unpacked)")


def _open(path: Path) -> io.BufferedIOBase:
    """The file's decompressed stream (gzip detected by its first two bytes) or its bytes."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _read_up_to(stream: io.BufferedIOBase, size: int) -> bytearray:
    """At most ``size`` bytes, in chunks: memory follows what the stream really holds, not what
    a header claims, and a gzip body is decompressed only as far as it is read."""
    out = bytearray()
    while len(out) < size:
        chunk = stream.read(min(size - len(out), _CHUNK))
        if not chunk:
            break
        out += chunk
    return out


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions into a uint8 tensor.

    The header is checked first and the body then streamed: at most the size the header
    states, plus one byte to tell that the file is longer, is decompressed and held, so a
    small gzip file that inflates to gigabytes fails after reading the size it claims.

    Args:
        path: The file, gzip-compressed (detected by its content) or raw.
        ndim: The number of dimensions it must have (3 for images, 1 for labels).

    Raises:
        ConfigError: naming the file, for a wrong magic number, data type, dimension count, a
            size that does not match the header, or a broken gzip stream.
    """
    path = Path(path)
    where = repr(str(path))
    try:
        with _open(path) as stream:
            return _read_stream(stream, where, ndim)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ConfigError(f"{where}: not a valid gzip file ({err})") from None


def _read_stream(stream: io.BufferedIOBase, where: str, ndim: int) -> torch.Tensor:
    magic = _read_up_to(stream, 4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise ConfigError(f"{where}: not an IDX file (the magic number must start with two zero"
                          f" bytes, got {magic.hex() or 'an empty file'})")
    dtype, dims = magic[2], magic[3]
    if dtype != _UBYTE:
        raise ConfigError(f"{where}: IDX data type 0x{dtype:02x}, expected 0x08 (unsigned bytes)")
    if dims != ndim:
        raise ConfigError(f"{where}: IDX file with {dims} dimension(s), expected {ndim}"
                          f" ({'images' if ndim == 3 else 'labels'})")
    header = 4 + 4 * dims
    raw_shape = _read_up_to(stream, 4 * dims)
    if len(raw_shape) < 4 * dims:
        raise ConfigError(f"{where}: truncated IDX header ({4 + len(raw_shape)} bytes)")
    shape = struct.unpack(f">{dims}I", raw_shape)
    size = math.prod(shape)
    body = _read_up_to(stream, size + 1)
    if len(body) != size:
        found = (f"more than {header + size}" if len(body) > size
                 else str(header + len(body)))
        raise ConfigError(f"{where}: IDX header says shape {shape} ({header + size} bytes with"
                          f" the header), the file has {found} bytes")
    if not body:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(body, dtype=torch.uint8).reshape(shape)
