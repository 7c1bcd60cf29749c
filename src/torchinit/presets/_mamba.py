"""Mamba (selective state-space models): its initializers and the ``mamba`` preset.

``dt_proj.bias`` is the inverse softplus of a log-uniform step (:class:`InverseSoftplusLogUniform`)
and ``A_log`` the S4D-Real table ``log(1 .. N)`` (:class:`LogArange`): both elementwise and
keyed like every other scheme, so shards fill bit for bit like the whole tensor. Plans reach
them through the init functions ``mamba_dt_bias`` and ``mamba_a_log``, so plan files round-trip;
they are not in the initializer catalog, so a manifest's JSON that names them cannot be read
back (``Manifest.from_json``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from .._fans import Fans
from ..errors import FanError, InitializerError
from ..initializers import Constant, Initializer, KaimingUniform, Normal, Ones, Uniform
from .._plan import ParamInfo, Plan, register_init_function
from .._streams import Key, UniformDist, sample_distribution
from ._recipes import _weights_biases_scales
from ._registry import anywhere, choice, positive_float, positive_int, register, rule

__all__ = ["InverseSoftplusLogUniform", "LogArange", "MAMBA_DT_RANGE"]

MAMBA_DT_RANGE = (1e-3, 1e-1, 1e-4)
"""Mamba's ``(dt_min, dt_max, dt_init_floor)`` (``time_step_min/max/floor`` in transformers)."""


@register_init_function("mamba_dt_bias")
def mamba_dt_bias(param: ParamInfo) -> Initializer:
    """Mamba's ``dt_proj.bias``: :class:`InverseSoftplusLogUniform` on Mamba's default range
    ``dt`` in ``[1e-3, 1e-1]`` (its floor ``1e-4`` lies below the range, so it never binds)."""
    return InverseSoftplusLogUniform(*MAMBA_DT_RANGE[:2])


@register_init_function("mamba_a_log")
def mamba_a_log(param: ParamInfo) -> Initializer:
    """Mamba's ``A_log``: :class:`LogArange`, ``log(1 .. N)`` along the state dimension."""
    return LogArange()


class _WeightedValues(Initializer):
    """An initializer whose moments are those of a weighted table of its values."""

    @abc.abstractmethod
    def _values(self, shape: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The values (float64) and their weights, summing to 1."""

    def _moments(self, shape: Sequence[int] | None) -> tuple[float, float, float]:
        values, weights = self._values(shape)
        mean = float((weights * values).sum())
        std = math.sqrt(float((weights * (values - mean) ** 2).sum()))
        return mean, std, float(values.abs().max())

    def mean_value(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self._moments(shape)[0]

    def std(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self._moments(shape)[1]

    def bound(self, fans: Fans | None = None, shape: Sequence[int] | None = None) -> float:
        return self._moments(shape)[2]


def _softplus_inverse(dt: torch.Tensor) -> torch.Tensor:
    """``x`` with ``softplus(x) = dt``, as Mamba computes it: ``dt + log(-expm1(-dt))``."""
    return dt + torch.log(-torch.expm1(-dt))


@dataclass(frozen=True)
class InverseSoftplusLogUniform(_WeightedValues):
    """``w = softplus^-1(dt)``, ``dt = exp(u)``, ``u ~ U(log dt_min, log dt_max)``: Mamba's
    ``dt_proj.bias``, so that ``softplus(bias)`` starts log-uniform in ``[dt_min, dt_max]``.

    Elementwise and keyed: ``u`` is the stream's uniform at the element's flat index. Mean and
    std are integrals over ``u`` (composite Simpson's rule, 2048 intervals); ``w`` increases
    with ``u``, so its extremes are the ends.

    Source: Gu & Dao, "Mamba" (2023), sec. 3.6; state-spaces/mamba
    ``mamba_ssm/modules/mamba_simple.py``, ``Mamba.__init__``; transformers
    ``models/mamba/modeling_mamba.py``, ``MambaMixer.init_mamba_weights``.

    Args:
        dt_min: Smallest initial step, > 0.
        dt_max: Largest initial step, > dt_min.
    """

    dt_min: float = 1e-3
    dt_max: float = 1e-1
    name = "inverse_softplus_log_uniform"
    formula = "w = dt + log(-expm1(-dt)), dt = exp(U(log dt_min, log dt_max))"

    def __post_init__(self) -> None:
        if not 0 < self.dt_min < self.dt_max < math.inf:
            raise InitializerError(f"{self.name} needs 0 < dt_min < dt_max, got"
                                   f" dt_min={self.dt_min!r}, dt_max={self.dt_max!r}")

    def _log_range(self) -> UniformDist:
        return UniformDist(math.log(self.dt_min), math.log(self.dt_max))

    def _values(self, shape: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        span, intervals = self._log_range(), 2048
        u = torch.linspace(span.low, span.high, 2 * intervals + 1, dtype=torch.float64)
        weights = torch.ones_like(u)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        return _softplus_inverse(u.exp()), weights / weights.sum()

    def _sample(self, shape: tuple[int, ...], key: Key, fans: Fans | None,
                region: tuple[slice, ...], out: torch.Tensor) -> torch.Tensor:
        u = sample_distribution(self._log_range(), key, shape, region, dtype=torch.float64,
                                device=out.device)
        return out.copy_(_softplus_inverse(u.exp()))


@dataclass(frozen=True)
class LogArange(_WeightedValues):
    """``w[..., j] = log(j + 1)``: Mamba's ``A_log`` (S4D-Real ``A = -(1 .. N)``), deterministic.

    Source: Gu et al., "On the Parameterization and Initialization of Diagonal State Space
    Models" (S4D, 2022); state-spaces/mamba ``mamba_ssm/modules/mamba_simple.py``; transformers
    ``MambaMixer.init_mamba_weights``.
    """

    name = "log_arange"
    formula = "w[..., j] = log(j + 1) along the last dimension"
    min_ndim = 1

    def _values(self, shape: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not shape:
            raise FanError("log_arange needs the tensor's shape (its last dimension) for its"
                           " moments")
        values = torch.arange(1, int(shape[-1]) + 1, dtype=torch.float64).log()
        return values, torch.ones_like(values) / values.numel()

    def _sample(self, shape: tuple[int, ...], key: Key, fans: Fans | None,
                region: tuple[slice, ...], out: torch.Tensor) -> torch.Tensor:
        last = region[-1]
        j = torch.arange(last.start, last.stop, last.step, dtype=torch.float64, device=out.device)
        return out.copy_((j + 1).log().expand(out.shape))


@register("mamba")
def mamba(dt_rank: int, std: float = 0.1, dt_scale: float = 1.0, dt_init: str = "random",
          n_layers: int | None = None) -> Plan:
    """Mamba (selective SSM) as transformers' ``MambaForCausalLM`` initializes it.

    * ``mixer.dt_proj.bias``: ``softplus^-1(dt)``, ``dt`` log-uniform in ``[1e-3, 1e-1]``
      (init function ``mamba_dt_bias``), so ``softplus(bias)`` starts in Mamba's step range.
    * ``mixer.A_log``: ``log(1 .. N)`` along the state dimension (init function ``mamba_a_log``);
      ``mixer.D``: 1.
    * ``mixer.dt_proj.weight``: ``U(+-s)`` (``dt_init="random"``) or ``s`` (``"constant"``),
      ``s = dt_rank ** -0.5 * dt_scale``.
    * ``mixer.conv1d.weight`` and ``mixer.out_proj.weight``: ``kaiming_uniform_(a=sqrt(5))``
      (torch's default, torch fans); with ``n_layers``, ``out_proj`` divided by
      ``sqrt(n_layers)``: ``kaiming_uniform_(a=sqrt(6 n_layers - 1))``, the same
      ``U(+-1/sqrt(n_layers fan_in))``.
    * Other weights and embeddings (``in_proj``, ``x_proj``, ``embeddings``) ``N(0, std)``;
      biases 0; RMSNorm scales 1.

    The original ``mamba_ssm`` keeps torch's default for ``in_proj``/``x_proj``, draws
    embeddings with std 0.02 and rescales ``out_proj`` by default; layer rules over this preset
    for that.

    Options:
        dt_rank: ``config.time_step_rank`` (``ceil(hidden_size / 16)`` for ``"auto"``),
            required.
        std: ``config.initializer_range``.
        dt_scale: ``config.time_step_scale``.
        dt_init: ``config.time_step_init_scheme``: ``"random"`` or ``"constant"``.
        n_layers: ``config.num_hidden_layers`` when ``config.rescale_prenorm_residual``;
            ``None`` leaves ``out_proj`` unscaled.

    Source: Gu & Dao, "Mamba" (2023); HF ``transformers/models/mamba/modeling_mamba.py``,
    ``MambaPreTrainedModel._init_weights`` and ``MambaMixer.init_mamba_weights``;
    state-spaces/mamba ``mamba_ssm/modules/mamba_simple.py``.
    """
    dt_rank = positive_int("mamba", "dt_rank", dt_rank)
    std = positive_float("mamba", "std", std)
    dt_std = dt_rank ** -0.5 * positive_float("mamba", "dt_scale", dt_scale)
    random = choice("mamba", "dt_init", dt_init, ("random", "constant")) == "random"
    depth = 1 if n_layers is None else positive_int("mamba", "n_layers", n_layers)
    r = partial(rule, "mamba")
    rules = _weights_biases_scales("mamba", Normal(0.0, std))
    rules += [
        r(KaimingUniform(negative_slope=math.sqrt(5.0)), fan_convention="torch",
          path=anywhere("mixer.conv1d.weight")),
        r(KaimingUniform(negative_slope=math.sqrt(6.0 * depth - 1.0)), fan_convention="torch",
          path=anywhere("mixer.out_proj.weight")),
        r(Uniform(-dt_std, dt_std) if random else Constant(dt_std),
          path=anywhere("mixer.dt_proj.weight")),
        r({"function": "mamba_dt_bias"}, optional=False, path=anywhere("mixer.dt_proj.bias")),
        r({"function": "mamba_a_log"}, optional=False, path=anywhere("mixer.A_log")),
        r(Ones(), path=anywhere("mixer.D")),
    ]
    return Plan(rules, name="mamba")
