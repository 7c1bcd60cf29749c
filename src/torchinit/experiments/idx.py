"""Reader of the IDX files of MNIST and Fashion-MNIST (gzip-compressed or raw).

The format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 TYPE NDIM``, then ``NDIM`` big-endian uint32 dimensions, then the data in row-major
order. Type ``0x08`` is unsigned bytes, the only type these datasets use.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import torch

from ..errors import ConfigError

__all__ = ["read_idx", "find_idx"]

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


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


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise ConfigError(f"{str(path)!r}: not a valid gzip file ({err})") from None


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions into a uint8 tensor.

    Args:
        path: The file, gzip-compressed (detected by its content) or raw.
        ndim: The number of dimensions it must have (3 for images, 1 for labels).

    Raises:
        ConfigError: naming the file, for a wrong magic number, data type, dimension count or a
            size that does not match the header.
    """
    path = Path(path)
    data = _read_bytes(path)
    where = repr(str(path))
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ConfigError(f"{where}: not an IDX file (the magic number must start with two zero"
                          f" bytes, got {data[:4].hex() or 'an empty file'})")
    dtype, dims = data[2], data[3]
    if dtype != _UBYTE:
        raise ConfigError(f"{where}: IDX data type 0x{dtype:02x}, expected 0x08 (unsigned bytes)")
    if dims != ndim:
        raise ConfigError(f"{where}: IDX file with {dims} dimension(s), expected {ndim}"
                          f" ({'images' if ndim == 3 else 'labels'})")
    header = 4 + 4 * dims
    if len(data) < header:
        raise ConfigError(f"{where}: truncated IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{dims}I", data[4:header])
    expected = header + math.prod(shape)
    if len(data) != expected:
        raise ConfigError(f"{where}: IDX header says shape {shape} ({expected} bytes with the"
                          f" header), the file has {len(data)} bytes")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)
