"""Init functions: rules whose initializer depends on the module it meets.

An init function is a named function ``(param: ParamInfo) -> Initializer``, registered here so
plans and config files can refer to it by name (``{"function": "torch_default"}``) without
executing code. The manifest records the initializer each function produced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, overload

from torch import nn

from .._moved import moved_attribute
from ..errors import ConfigError, FanError, UnknownNameError, short_repr, suggest
from ..initializers import Constant, Initializer, Normal, Ones, Uniform, Zeros
from .._layouts import fans as layer_fans
from .roles import NORM_TYPES, is_norm
from .selectors import ParamInfo

__all__ = ["InitFunction", "register_init_function", "init_function_names"]


def __getattr__(name: str) -> object:
    """The former names (``InitFactory``, ``register_factory``), with a warning."""
    return moved_attribute(__name__, name)


InitFn = Callable[[ParamInfo], Initializer]
_FUNCTIONS: dict[str, InitFn] = {}
_F = TypeVar("_F", bound=InitFn)


@overload
def register_init_function(name: str, fn: None = None, *, replace: bool = False
                           ) -> Callable[[_F], _F]: ...


@overload
def register_init_function(name: str, fn: _F, *, replace: bool = False) -> _F: ...


def register_init_function(name: str, fn: _F | None = None, *, replace: bool = False
                           ) -> _F | Callable[[_F], _F]:
    """Register ``fn(param_info) -> Initializer`` under ``name`` (usable as a decorator).

    Raises:
        ConfigError: for a function that is not callable, or a name another function already
            has (plans name init functions, so two under one name would change what a plan
            file means; ``replace=True`` replaces on purpose).
    """
    def add(f: _F) -> _F:
        if not callable(f):
            raise ConfigError(f"init function {name!r} must be callable, got {f!r}")
        owner = _FUNCTIONS.get(name)
        if owner is not None and owner is not f and not replace \
                and (owner.__module__, owner.__qualname__) != (f.__module__, f.__qualname__):
            raise ConfigError(f"init function {name!r} is already registered"
                              f" ({owner.__module__}.{owner.__qualname__}); choose another name,"
                              " or pass"
                              " replace=True")
        _FUNCTIONS[name] = f
        return f

    return add(fn) if fn is not None else add


def init_function_names() -> list[str]:
    """Registered init function names."""
    return sorted(_FUNCTIONS)


@dataclass(frozen=True)
class InitFunction:
    """A reference to a registered init function, by name."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in _FUNCTIONS:
            raise UnknownNameError(
                f"unknown init function {short_repr(self.name)}; known:"
                f" {init_function_names()}."
                + suggest(self.name, _FUNCTIONS)
            )

    def __call__(self, param: ParamInfo) -> Initializer:
        return _FUNCTIONS[self.name](param)

    def to_config(self) -> dict[str, str]:
        return {"function": self.name}


def _symmetric_uniform(bound: float) -> Initializer:
    return Uniform(-bound, bound) if bound > 0 else Zeros()


def _parent_is_attention(param: ParamInfo) -> bool:
    return bool(param.ancestors) and isinstance(param.ancestors[-1], nn.MultiheadAttention)


@register_init_function("torch_default")
def torch_default(param: ParamInfo) -> Initializer:
    """The distribution ``reset_parameters()`` of torch's own layers draws for this parameter.

    Linear / Conv / ConvTranspose: weight ``kaiming_uniform_(a=sqrt(5))``, i.e.
    ``U(+-1/sqrt(fan_in))`` with torch's axis-order fan_in; bias ``U(+-1/sqrt(fan_in))`` from the
    weight. Bilinear: ``U(+-1/sqrt(in1_features))``. Embedding: ``N(0, 1)``. RNN/LSTM/GRU and
    cells: ``U(+-1/sqrt(hidden_size))``. MultiheadAttention: ``xavier_uniform_`` on the packed
    or separate projections, zero biases (``out_proj.bias`` too), ``xavier_normal_`` on
    ``bias_k``/``bias_v``. Norm layers: weight 1, bias 0. PReLU: its ``init`` value.
    """
    m, name = param.module, param.name
    if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear, nn.Embedding,
                      nn.EmbeddingBag, *NORM_TYPES, nn.PReLU)) and name not in ("weight", "bias"):
        raise FanError(
            f"torch_default: {type(m).__name__} has no parameter {name!r} of its own"
            f" (parameter {param.path!r} was added by a subclass); add a rule for it")
    if isinstance(m, nn.Linear) and name == "bias" and _parent_is_attention(param):
        return Zeros()
    if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
        fan_in = layer_fans(m, "weight", convention="torch").fan_in
        return _symmetric_uniform(1.0 / math.sqrt(fan_in) if fan_in else 0.0)
    if isinstance(m, nn.Bilinear):
        return _symmetric_uniform(1.0 / math.sqrt(m.weight.shape[1]))
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
        return Normal(0.0, 1.0)
    if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
        return _symmetric_uniform(1.0 / math.sqrt(m.hidden_size))
    if isinstance(m, nn.MultiheadAttention):
        if name.endswith("bias") and name.startswith("in_proj"):
            return Zeros()
        shape = tuple(getattr(m, name).shape)
        if len(shape) < 2:
            raise FanError(
                f"torch_default: {type(m).__name__} has no {len(shape)}-dimensional parameter"
                f" {name!r} of its own (parameter {param.path!r} was added by a subclass); add a"
                " rule for it")
        f = layer_fans(m, name, convention="torch")
        if name in ("bias_k", "bias_v"):
            return Normal(0.0, math.sqrt(2.0 / (f.fan_in + f.fan_out)))
        return _symmetric_uniform(math.sqrt(6.0 / (f.fan_in + f.fan_out)))
    if is_norm(m):  # torch's norms, and layers with their structure (LlamaRMSNorm)
        return Zeros() if name in ("bias", "offset", "beta") else Ones()
    if isinstance(m, nn.PReLU):
        return Constant(float(m.init))
    raise FanError(
        f"torch_default does not know the default initialization of {type(m).__name__}."
        f"{name} (parameter {param.path!r}); add a rule for it after the torch preset's"
        " rule (later rules win), or register an init function"
    )
