"""Drop-in twins of :mod:`torch.nn.init`, backed by the torchinit catalog.

``import torchinit.functional as init`` can replace ``import torch.nn.init as init``: every public
function of ``torch.nn.init`` exists here with the same name, parameters and defaults, fills the
tensor in place under ``torch.no_grad()`` and returns it. Each one builds the matching catalog
initializer (:class:`~torchinit.XavierUniform`, :class:`~torchinit.KaimingNormal`, ...) and
fills the tensor with it.

Differences from ``torch.nn.init``:

* **Same distributions and formulas, different random stream.** The values come from torchinit's
  counter-based Philox4x32-10 stream keyed by ``torchinit.Key(seed, "")``, where ``seed`` is drawn
  from torch's RNG (``generator`` if given, else the default generator of the tensor's device).
  Existing seeding therefore keeps working (``torch.manual_seed(0)`` makes a run reproducible and
  consecutive calls differ), but the values differ from torch's for the same seed.
* **Fans follow torch's axis-order convention** on the tensor's shape
  (``fan_in = shape[1] * prod(shape[2:])``, ``fan_out = shape[0] * prod(shape[2:])``), as in
  torch. For fans taken from what a layer computes, use plans or :func:`torchinit.fans`.
* **Orthogonal, sparse, eye and Dirac matrices are built in float64 on the CPU** and rounded
  once to the tensor's dtype, so bfloat16/float16 tensors are supported (torch's QR is not).
* **Errors are torchinit's own exceptions**, subclasses of :class:`ValueError` or
  :class:`TypeError` that name the tensor shape and the initializer, e.g.
  :class:`~torchinit.errors.FanError` for ``xavier_uniform_`` on a 1-D tensor and
  :class:`~torchinit.errors.DTypeError` for integer or bool tensors (also for ``zeros_``,
  ``ones_``, ``constant_``, ``eye_`` and ``dirac_``, which torch fills for any dtype).
  Arguments are validated by the catalog: ``uniform_`` needs ``a <= b`` (``a == b`` fills
  with ``a``, as torch does), ``constant_`` a value that is not NaN (+-inf is fine, for
  masks). Numbers may be 0-d tensors (``std=torch.tensor(0.02)``) wherever torch accepts them.
* **Values beyond the dtype's range are an error**, before anything is written
  (``normal_(half_tensor, 0, 1e6)``; a normal counts as reaching ``|mean| + 10 std``).
* ``_calculate_fan_in_and_fan_out`` and ``_calculate_correct_fan`` are torch's helpers, with
  the same results and torchinit's errors (``ValueError`` subclasses).
* **Zero-element tensors** are checked, then left untouched with a warning
  ("Initializing zero-element tensors is a no-op") by every function, not only by torch's
  ``kaiming_*_``. Meta tensors are checked and returned unchanged.
* ``trunc_normal_`` samples by the inverse CDF, exact for any bounds, so it does not warn when
  ``mean`` is far from ``[a, b]``.
* The deprecated names (``uniform``, ``xavier_normal``, ...) warn with a :class:`FutureWarning`
  and delegate, as in torch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

import torch
from torch import Tensor

from ._fans import FanMode
from ._fans import calculate_correct_fan as _calculate_correct_fan  # noqa: F401  (torch's names)
from ._fans import calculate_fan_in_and_fan_out as _calculate_fan_in_and_fan_out  # noqa: F401
from .errors import ArgumentTypeError
from ._gains import Nonlinearity, calculate_gain
from .initializers import (
    Constant,
    Dirac,
    Eye,
    Initializer,
    KaimingNormal,
    KaimingUniform,
    Normal,
    Ones,
    Orthogonal,
    Sparse,
    TruncatedNormal,
    Uniform,
    XavierNormal,
    XavierUniform,
    Zeros,
)
from ._plan.write import fill
from ._streams import Key

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
    # Deprecated aliases, as in torch.nn.init.
    "uniform",
    "normal",
    "constant",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Key of the deterministic schemes, which draw no values from it.
_FIXED_KEY = Key(0)


# -- shared machinery ---------------------------------------------------------------------------
def _draw_seed(tensor: Tensor, generator: torch.Generator | None) -> int:
    """Draw the stream seed from torch's RNG, so ``torch.manual_seed`` and generators apply.

    Uses ``generator`` on its own device if given, else the default generator of the tensor's
    device (the CPU one for CPU tensors, the CUDA one of the tensor's GPU, ...).
    """
    device = generator.device if generator is not None else tensor.device
    return int(torch.randint(0, 2**63 - 1, (), generator=generator, device=device).item())


def _fill(
    tensor: Tensor,
    initializer: Initializer,
    generator: torch.Generator | None = None,
    *,
    random: bool = True,
) -> Tensor:
    """Fill ``tensor`` in place with ``initializer`` (through the one writer) and return it.

    Args:
        tensor: The tensor to fill (any floating dtype and device; may require grad).
        initializer: The catalog scheme; fans default to torch's axis-order rule.
        generator: Torch generator the seed is drawn from (default: the device's global one).
        random: False for deterministic schemes, which draw no seed from torch's RNG.

    Returns:
        ``tensor``.

    Every check (dtype, rank, fans, shape, writable storage, values within the dtype's range)
    runs before the seed is drawn, so a call that fails leaves torch's RNG untouched.
    """
    key = (lambda: Key(_draw_seed(tensor, generator))) if random else _FIXED_KEY
    return fill(tensor, initializer, key)


def _number(value: float | Tensor, name: str, one_element: bool = False) -> float:
    """A Python number from a number or, as torch accepts, a 0-d tensor (``one_element``:
    any one-element tensor, where torch only does arithmetic with the argument)."""
    if isinstance(value, Tensor):
        if value.dim() == 0 or (one_element and value.numel() == 1):
            return value.item()
        raise ArgumentTypeError(f"{name} must be a number or a 0-d tensor, got a tensor of"
                                f" shape {tuple(value.shape)}")
    return value


# -- elementwise distributions ------------------------------------------------------------------
def uniform_(
    tensor: Tensor,
    a: float = 0.0,
    b: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with values drawn from the uniform distribution ``U(a, b)``.

    Mean ``(a + b) / 2``, standard deviation ``(b - a) / sqrt(12)``.

    Args:
        tensor: An n-dimensional floating tensor.
        a: Lower bound.
        b: Upper bound; ``>= a`` (``a == b`` fills with ``a``).
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.

    Raises:
        InitializerError: if ``a > b`` or a bound is not finite.
        DTypeError: for integer or bool tensors.
    """
    a, b = _number(a, "a"), _number(b, "b")
    if a == b and math.isfinite(a):  # torch's U(a, a): every value is a (no seed is drawn)
        return _fill(tensor, Constant(value=a), random=False)
    return _fill(tensor, Uniform(low=a, high=b), generator)


def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with values drawn from the normal distribution ``N(mean, std^2)``.

    Args:
        tensor: An n-dimensional floating tensor.
        mean: The mean.
        std: The standard deviation, >= 0.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.
    """
    return _fill(tensor, Normal(mean=_number(mean, "mean"), stddev=_number(std, "std")),
                 generator)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with values from ``N(mean, std^2)`` truncated to ``[a, b]``.

    Torch semantics: ``a`` and ``b`` are absolute bounds and ``std`` is the standard deviation
    before truncation (the result's is smaller: 0.8796 for the defaults). Sampled by the inverse
    CDF, ``mean + std * ndtri(Phi(alpha) + u (Phi(beta) - Phi(alpha)))`` with
    ``alpha = (a - mean) / std`` and ``beta = (b - mean) / std``.

    Args:
        tensor: An n-dimensional floating tensor.
        mean: Mean of the untruncated normal.
        std: Standard deviation of the untruncated normal, >= 0.
        a: Lower bound.
        b: Upper bound, > ``a``.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.
    """
    init = TruncatedNormal(mean=_number(mean, "mean"), stddev=_number(std, "std"),
                           a=_number(a, "a"), b=_number(b, "b"))
    return _fill(tensor, init, generator)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill ``tensor`` with the value ``val``: ``w = val``.

    Args:
        tensor: An n-dimensional floating tensor.
        val: A real number (or a 0-d tensor); +-inf is allowed, NaN is not.

    Returns:
        ``tensor``, filled in place.
    """
    return _fill(tensor, Constant(value=_number(val, "val")), random=False)


def ones_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with ones: ``w = 1``.

    Args:
        tensor: An n-dimensional floating tensor.

    Returns:
        ``tensor``, filled in place.
    """
    return _fill(tensor, Ones(), random=False)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with zeros: ``w = 0``.

    Args:
        tensor: An n-dimensional floating tensor.

    Returns:
        ``tensor``, filled in place.
    """
    return _fill(tensor, Zeros(), random=False)


# -- structured ---------------------------------------------------------------------------------
def eye_(tensor: Tensor) -> Tensor:
    """Fill the 2-D ``tensor`` with the identity matrix: ``W[i, j] = 1 if i == j else 0``.

    Preserves the identity of the inputs of a ``Linear`` layer, as many as the shape allows.

    Args:
        tensor: A 2-D floating tensor.

    Returns:
        ``tensor``, filled in place.

    Raises:
        InitializerError: (a ValueError) if ``tensor`` is not 2-D.
    """
    return _fill(tensor, Eye(), random=False)


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill the 3-, 4- or 5-D ``tensor`` with the Dirac delta (Zagoruyko & Komodakis, DiracNets,
    2017).

    For a kernel ``(out, in, k1, ..., kd)`` with ``groups`` groups of ``out / groups`` output
    channels, ``W[g * out/groups + d, d, k1 // 2, ..., kd // 2] = 1`` for
    ``d < min(out/groups, in)`` and 0 elsewhere, so the convolution passes its input through.

    Args:
        tensor: A 3-, 4- or 5-D floating tensor.
        groups: Number of groups of the convolution; must divide ``out``.

    Returns:
        ``tensor``, filled in place.

    Raises:
        InitializerError: (a ValueError) for other ranks or a ``groups`` not dividing ``out``.
    """
    return _fill(tensor, Dirac(groups=groups), random=False)


# -- variance scaling ---------------------------------------------------------------------------
def xavier_uniform_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with Xavier/Glorot uniform values (Glorot & Bengio, "Understanding the
    difficulty of training deep feedforward neural networks", AISTATS 2010).

    ``w ~ U(-bound, bound)``, ``bound = gain * sqrt(6 / (fan_in + fan_out))``.

    Args:
        tensor: A floating tensor with at least 2 dimensions.
        gain: Multiplier, e.g. ``calculate_gain("tanh")``.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.

    Raises:
        FanError: (a ValueError) for tensors with fewer than 2 dimensions.
    """
    return _fill(tensor, XavierUniform(gain=_number(gain, "gain")), generator)


def xavier_normal_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with Xavier/Glorot normal values (Glorot & Bengio, AISTATS 2010).

    ``w ~ N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Args:
        tensor: A floating tensor with at least 2 dimensions.
        gain: Multiplier, e.g. ``calculate_gain("tanh")``.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.

    Raises:
        FanError: (a ValueError) for tensors with fewer than 2 dimensions.
    """
    return _fill(tensor, XavierNormal(gain=_number(gain, "gain")), generator)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with Kaiming/He uniform values (He et al., "Delving Deep into Rectifiers",
    ICCV 2015).

    ``w ~ U(-bound, bound)``, ``bound = gain * sqrt(3 / fan_mode)``,
    ``gain = calculate_gain(nonlinearity, a)``.

    Args:
        tensor: A floating tensor with at least 2 dimensions.
        a: Negative slope of the rectifier after this layer (used with ``"leaky_relu"``).
        mode: ``"fan_in"`` preserves the forward variance, ``"fan_out"`` the backward one.
        nonlinearity: Name of the nonlinearity, as for :func:`calculate_gain`.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.
    """
    # torch accepts any case; KaimingUniform checks the lowered name is a FanMode
    lowered = cast(FanMode, mode.lower())
    return _fill(tensor, KaimingUniform(negative_slope=a, mode=lowered, nonlinearity=nonlinearity),
                 generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with Kaiming/He normal values (He et al., "Delving Deep into Rectifiers",
    ICCV 2015).

    ``w ~ N(0, std^2)``, ``std = gain / sqrt(fan_mode)``, ``gain = calculate_gain(nonlinearity,
    a)``.

    Args:
        tensor: A floating tensor with at least 2 dimensions.
        a: Negative slope of the rectifier after this layer (used with ``"leaky_relu"``).
        mode: ``"fan_in"`` preserves the forward variance, ``"fan_out"`` the backward one.
        nonlinearity: Name of the nonlinearity, as for :func:`calculate_gain`.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.
    """
    # torch accepts any case; KaimingNormal checks the lowered name is a FanMode
    lowered = cast(FanMode, mode.lower())
    return _fill(tensor, KaimingNormal(negative_slope=a, mode=lowered, nonlinearity=nonlinearity),
                 generator)


def orthogonal_(
    tensor: Tensor,
    gain: float = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with a (semi-)orthogonal matrix (Saxe et al., "Exact solutions to the
    nonlinear dynamics of learning in deep linear neural networks", ICLR 2014).

    The tensor is viewed as a ``(rows, prod(shape[1:]))`` matrix ``W`` with
    ``W W^T = gain^2 I`` (rows <= cols) or ``W^T W = gain^2 I`` (rows > cols): the Q factor of a
    Gaussian matrix with the signs of R's diagonal folded in (Mezzadri 2007), computed in float64
    and rounded once to the tensor's dtype.

    Args:
        tensor: A floating tensor with at least 2 dimensions.
        gain: Multiplier, >= 0.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.
    """
    return _fill(tensor, Orthogonal(gain=_number(gain, "gain", one_element=True)), generator)


def sparse_(
    tensor: Tensor,
    sparsity: float,
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill the 2-D ``tensor`` as a sparse matrix (Martens, "Deep learning via Hessian-free
    optimization", ICML 2010).

    In every column ``ceil(sparsity * rows)`` entries are zero and the others are
    ``N(0, std^2)``.

    Args:
        tensor: A 2-D floating tensor.
        sparsity: Fraction of each column set to zero, in [0, 1].
        std: Standard deviation of the non-zero values.
        generator: Torch generator the stream seed is drawn from.

    Returns:
        ``tensor``, filled in place.

    Raises:
        InitializerError: (a ValueError) if ``tensor`` is not 2-D.
    """
    init = Sparse(sparsity=_number(sparsity, "sparsity", one_element=True),
                  stddev=_number(std, "std"))
    return _fill(tensor, init, generator)


# -- deprecated aliases -------------------------------------------------------------------------
def _deprecated(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap ``function`` (named ``X_``) as the deprecated ``X``, which warns and delegates."""
    new_name = function.__name__
    old_name = new_name.removesuffix("_")

    def deprecated_init(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        warnings.warn(
            f"`torchinit.functional.{old_name}` is now deprecated in favor of"
            f" `torchinit.functional.{new_name}`.",
            FutureWarning,
            stacklevel=2,
        )
        return function(*args, **kwargs)

    deprecated_init.__name__ = deprecated_init.__qualname__ = old_name
    deprecated_init.__doc__ = f"Deprecated alias of :func:`{new_name}`; warns and delegates."
    return deprecated_init


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
