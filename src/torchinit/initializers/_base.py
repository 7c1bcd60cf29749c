"""The :class:`Initializer` base class shared by every scheme in the catalog."""

from __future__ import annotations

import dataclasses
import abc
import math
import numbers
import sys
from dataclasses import dataclass
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .._fans import Fans, torch_fans
from ..errors import DTypeError, FanError, InitializerError, describe_target, short_repr
from .._streams import Distribution, Key, as_key, normalize_region, region_shape
from .._streams.distributions import NormalDist
from .._streams.regions import block_rows
from .._streams.reference import sample_distribution

__all__ = ["Initializer", "ElementwiseInitializer", "StructuredInitializer", "GainMixin",
           "check_finite", "check_non_negative", "check_distribution"]


def check_real(owner: str, allow_inf: bool = False, **values: float) -> None:
    """Raise if any named value is not a real number (finite unless ``allow_inf``); an integer
    beyond float64's range (``10**400``) is not finite."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InitializerError(f"{owner}: {name} must be a real number, got"
                                   f" {short_repr(value)}", field=(name,))
        try:
            as_float = float(value)
        except OverflowError:
            raise InitializerError(f"{owner}: {name} must be a finite float64 number, got"
                                   f" {short_repr(value)}, beyond float64's largest value"
                                   f" {sys.float_info.max:.4g}", field=(name,)) from None
        if math.isnan(as_float) or (not allow_inf and math.isinf(as_float)):
            raise InitializerError(f"{owner}: {name} must be finite, got {short_repr(value)}",
                                   field=(name,))


# The largest |z| the normal sampler can return: ndtri of the smallest 53-bit uniform
# (2**-54) is -8.29; bounds of unbounded schemes are checked with a margin above it.
_LARGEST_Z = 9.0


def check_distribution(owner: str, dist: Distribution) -> None:
    """Raise if the values drawn from ``dist``, or their mean or std, overflow float64.

    Arguments that are finite one by one can still overflow together: ``uniform(-1e308,
    1e308)`` has a width of 2e308, which float64 cannot hold.
    """
    largest = dist.bound()
    if isinstance(dist, NormalDist):
        largest = abs(dist.loc) + _LARGEST_Z * dist.scale
    for what, value in (("largest value", largest), ("mean", dist.mean()), ("std", dist.std())):
        if not math.isfinite(value):
            raise InitializerError(
                f"{owner}: the {what} of its values overflows float64 ({value}) for {dist};"
                " use arguments whose range, mean and scale stay below 1e308"
            )


def check_finite(owner: str, **values: float) -> None:
    """Raise if any named value is not a finite real number."""
    check_real(owner, False, **values)


def check_non_negative(owner: str, **values: float) -> None:
    """Raise if any named value is not a finite real number >= 0."""
    check_finite(owner, **values)
    for name, value in values.items():
        if value < 0:
            raise InitializerError(f"{owner}: {name} must be >= 0, got {short_repr(value)}",
                                   field=(name,))


@dataclass(frozen=True)
class GainMixin:
    """A ``gain`` field (a multiplier of the scale, e.g. ``calculate_gain("tanh")``), >= 0."""

    gain: float = 1.0

    def __post_init__(self) -> None:
        check_non_negative(getattr(self, "name", type(self).__name__), gain=self.gain)


class Initializer(abc.ABC):
    """A parameter initialization scheme: a frozen, validated, JSON-configurable value object.

    Subclasses are frozen dataclasses whose fields are the scheme's arguments. The class
    attributes describe what the scheme needs:

    * ``name`` / ``aliases``: registry names.
    * ``uses_fans``: the scale depends on fan-in/fan-out.
    * ``min_ndim``: the smallest tensor rank the scheme is defined for (2 for weight-matrix
      schemes such as Xavier, He, LeCun and orthogonal).
    * ``elementwise``: element ``i`` is a pure function of (key, i); regions are generated
      directly. Structured schemes (orthogonal, sparse) build whole blocks, then slice.
    """

    if TYPE_CHECKING:  # every concrete initializer is a dataclass (``dataclasses.fields``)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    name: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    uses_fans: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 0
    max_ndim: ClassVar[int | None] = None
    elementwise: ClassVar[bool] = True

    # -- configuration -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """JSON-safe dict ``{"name": ..., **arguments}``; see ``initializers.from_config``."""
        config: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, int)):
                value = float(value)  # numpy scalars become JSON-safe floats
            config[f.name] = value
        return config

    # -- validation ----------------------------------------------------------------------------
    def check(
        self,
        shape: Sequence[int],
        dtype: torch.dtype | None = None,
        fans: Fans | None = None,
        path: str | None = None,
    ) -> Fans | None:
        """Validate that this scheme can fill a tensor; return the fans it would use.

        Raises:
            DTypeError: for non-floating dtypes.
            InitializerError: (or FanError) for shapes or fans the scheme cannot serve.
        """
        if dtype is not None:
            _check_dtype(dtype, path or "", shape, self)
        return self.resolve_fans(shape, fans, path)

    def resolve_fans(
        self, shape: Sequence[int], fans: Fans | None, path: str | None = None
    ) -> Fans | None:
        """Check that this scheme can fill ``shape`` and return the fans it will use.

        Fan-based schemes without explicit ``fans`` use the torch axis-order rule on ``shape``.

        Raises:
            InitializerError: (or its subclass FanError) naming the parameter, shape and scheme.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) < self.min_ndim:
            raise FanError(
                f"{self.name} cannot initialize {describe_target(path, shape)}: it needs a tensor"
                f" with at least {self.min_ndim} dimensions (a weight matrix or kernel)."
                + self._low_rank_hint()
            )
        if self.max_ndim is not None and len(shape) > self.max_ndim:
            raise InitializerError(
                f"{self.name} cannot initialize {describe_target(path, shape)}: it is defined for"
                f" tensors with at most {self.max_ndim} dimensions."
            )
        self._check_shape(shape, path)
        if not self.uses_fans:
            return fans
        if fans is None:
            fans = torch_fans(shape, describe_target(path, None))
        if fans.fan_in == 0 or fans.fan_out == 0:
            if math.prod(shape) != 0:
                raise FanError(
                    f"{self.name} cannot initialize {describe_target(path, shape)}: its fans are"
                    f" {fans.fan_in} in / {fans.fan_out} out, and a zero fan gives no scale."
                )
        return fans

    def _low_rank_hint(self) -> str:
        return (
            " For biases and other 1-D tensors use zeros, constant, normal or uniform"
            " (or general_rule with the layer's fans), e.g. a plan rule on role 'bias'."
        )

    def _check_shape(self, shape: tuple[int, ...], path: str | None) -> None:
        """Hook for scheme-specific shape checks (dirac, sparse, delta_orthogonal)."""

    # -- moments -------------------------------------------------------------------------------
    @abc.abstractmethod
    def std(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        """Standard deviation of the values this scheme produces (exact)."""

    @abc.abstractmethod
    def mean_value(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        """Mean of the values this scheme produces."""

    @abc.abstractmethod
    def bound(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        """Largest absolute value this scheme can produce (``inf`` for unbounded schemes)."""

    # -- sampling ------------------------------------------------------------------------------
    def sample(
        self,
        shape: Sequence[int],
        key: Key | int,
        fans: Fans | None = None,
        region: Sequence[slice] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw the values of a tensor of full ``shape``, or only of ``region`` of it.

        Args:
            shape: The full shape of the parameter.
            key: ``torchinit.Key(seed, path)`` (or an int seed); the path names the parameter in
                errors and selects its stream.
            fans: Fans to use; fan-based schemes default to the torch axis-order rule.
            region: Slices selecting part of the tensor (e.g. a shard). The result equals
                ``sample(shape, ...)[region]`` bit for bit.
            dtype: A floating dtype (default: ``torch.get_default_dtype()``).
            device: Where to build the result (default CPU).
            out: A tensor of the region's shape to write into (its dtype and device are used).

        Returns:
            A new tensor of the region's shape, or ``out``.
        """
        key = as_key(key)
        shape = tuple(int(s) for s in shape)
        if out is not None:
            dtype, device = out.dtype, out.device
        dtype = _check_dtype(dtype if dtype is not None else torch.get_default_dtype(), key.path,
                             shape, self)
        fans = self.resolve_fans(shape, fans, key.path or None)
        norm = normalize_region(shape, region)
        if out is None:
            out = torch.empty(region_shape(norm), dtype=dtype, device=device)
        if math.prod(shape) == 0:
            return out
        return self._sample(shape, key, fans, norm, out)

    @abc.abstractmethod
    def _sample(
        self,
        shape: tuple[int, ...],
        key: Key,
        fans: Fans | None,
        region: tuple[slice, ...],
        out: torch.Tensor,
    ) -> torch.Tensor:
        """Write the region's values into ``out`` (of the region's shape) and return it."""

    def fill_(self, tensor: torch.Tensor, key: Key | int, fans: Fans | None = None) -> torch.Tensor:
        """Fill ``tensor`` in place (under ``no_grad``, through ``Manifest.write``'s checks)
        and return it. A zero-element tensor is left as is, with a warning."""
        from .._plan.write import fill

        return fill(tensor, self, key, fans)


def _check_dtype(dtype: torch.dtype, path: str, shape: Sequence[int], init: object) -> torch.dtype:
    if not dtype.is_floating_point:
        raise DTypeError(
            f"cannot initialize {describe_target(path or None, shape, init)} as {dtype}:"
            " initializers produce real values; use a floating dtype such as torch.float32,"
            " torch.bfloat16 or torch.float16."
        )
    return dtype


class ElementwiseInitializer(Initializer):
    """A scheme whose elements are i.i.d. draws from one :class:`Distribution` given the fans."""

    elementwise: ClassVar[bool] = True

    @abc.abstractmethod
    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        """The distribution every element is drawn from, for the given fans."""

    def check(
        self,
        shape: Sequence[int],
        dtype: torch.dtype | None = None,
        fans: Fans | None = None,
        path: str | None = None,
    ) -> Fans | None:
        """As :meth:`Initializer.check`, and the values for these fans must not overflow
        float64 (a tensor with no elements draws none, so any fans serve it)."""
        fans = super().check(shape, dtype, fans, path)
        if math.prod(int(s) for s in shape) != 0:
            try:
                check_distribution(self.name, self.distribution_for(fans))
            except InitializerError as err:
                raise type(err)(f"cannot initialize {describe_target(path, shape)}: {err}"
                                ) from None
        return fans

    def _fans_for_moments(self, fans: Fans | None, shape: Sequence[int] | None) -> Fans | None:
        if self.uses_fans and fans is None:
            if shape is None:
                raise FanError(f"{self.name} needs fans (or a shape) to compute its scale")
            return torch_fans(shape)
        return fans

    def std(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self.distribution_for(self._fans_for_moments(fans, shape)).std()

    def mean_value(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self.distribution_for(self._fans_for_moments(fans, shape)).mean()

    def bound(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self.distribution_for(self._fans_for_moments(fans, shape)).bound()

    def _sample(self, shape: tuple[int, ...], key: Key, fans: Fans | None,
                region: tuple[slice, ...], out: torch.Tensor) -> torch.Tensor:
        return sample_distribution(self.distribution_for(fans), key, shape, region, out=out)


class StructuredInitializer(Initializer):
    """A scheme that builds whole matrices (per block of a fused parameter) and then slices.

    A region costs the full generation of every block it touches. ``per_block = False`` builds
    a fused parameter as one matrix, ignoring its blocks (dirac, sparse).
    """

    elementwise: ClassVar[bool] = False
    per_block: ClassVar[bool] = True

    @abc.abstractmethod
    def _generate(self, shape: tuple[int, ...], key: Key) -> torch.Tensor:
        """Return the full float64 CPU tensor of ``shape`` (one block of a fused parameter).

        Generation runs on the CPU in float64 whatever the target device, so every device gets
        the same values (rounded once to the target dtype).
        """

    def _blocks(self, shape: tuple[int, ...], fans: Fans | None) -> list[tuple[str, int, int]]:
        if self.per_block and fans is not None and fans.blocks:
            return [(b.name, b.start, b.stop) for b in fans.blocks]
        return [("", 0, shape[0] if shape else 1)]

    def _sample(self, shape: tuple[int, ...], key: Key, fans: Fans | None,
                region: tuple[slice, ...], out: torch.Tensor) -> torch.Tensor:
        rows = range(region[0].start, region[0].stop, region[0].step)
        for name, start, stop in self._blocks(shape, fans):
            found = block_rows(rows, start, stop)
            if found is None:
                continue
            local, chosen = found
            block_key = key.child(name) if name else key
            block = self._generate((stop - start, *shape[1:]), block_key)
            within = slice(chosen.start - start, chosen.stop - start, chosen.step)
            index = (within, *region[1:])
            out[local] = block[index].to(device=out.device, dtype=out.dtype)
        return out

    @abc.abstractmethod
    def _moments(
        self, rows: int, cols: int, shape: tuple[int, ...] | None
    ) -> tuple[float, float, float]:
        """(mean, std, bound) of one block viewed as a (rows, cols) matrix."""

    def _block_moments(
        self, fans: Fans | None, shape: Sequence[int] | None
    ) -> tuple[float, float, float]:
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            if len(shape) < max(self.min_ndim, 1):
                raise FanError(f"{self.name} has no moments for a tensor of shape {shape}: it"
                               f" needs at least {max(self.min_ndim, 1)} dimensions")
            rows = shape[0]
            if fans is not None and fans.blocks:
                rows = fans.blocks[0].stop - fans.blocks[0].start
                shape = (rows, *shape[1:])
            return self._moments(rows, math.prod(shape[1:]), shape)
        if fans is None:
            raise FanError(f"{self.name} needs the tensor shape (or fans) to compute its moments")
        return self._moments(fans.fan_out // max(fans.receptive_field, 1), fans.fan_in, None)

    def mean_value(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self._block_moments(fans, shape)[0]

    def std(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        """Root-mean-square deviation of the produced values from their mean (exact for the
        deterministic schemes; the expected value for orthogonal and sparse)."""
        return self._block_moments(fans, shape)[1]

    def bound(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self._block_moments(fans, shape)[2]
