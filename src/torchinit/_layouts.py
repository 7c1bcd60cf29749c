"""Layout registry: the fans of each parameter of each layer type, from what the layer computes.

torch.nn.init reads fans off a tensor's axis order (``fan_in = shape[1] * prod(shape[2:])``,
``fan_out = shape[0] * prod(shape[2:])``). That rule is right for ``nn.Linear`` but wrong for layers
whose weight stores its axes differently (``ConvTranspose`` keeps ``in_channels`` first, see
pytorch/pytorch#23854), groups its channels, fuses several matrices into one parameter (LSTM gates,
packed q/k/v) or is a lookup table (``nn.Embedding``). A *layout* maps a module and one of its
parameter names to the :class:`~torchinit.Fans` of what the layer computes: fan-in is the number
of inputs summed into one output (Glorot & Bengio 2010; He et al. 2015), fan-out the number of
outputs one input reaches.

Layouts are keyed by class, or by qualified class name (``"transformers.pytorch_utils.Conv1D"``)
for layers of other libraries: a name matches ``cls.__module__ + "." + cls.__qualname__`` of a
class in the module's MRO, so torchinit never imports those libraries itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar, Union, cast, overload

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from ._fans import FAN_CONVENTIONS, Block, FanConvention, Fans, torch_fans
from ._norms import NORM_TYPES
from .errors import ConfigError, FanError, describe_target, short_repr, suggest

__all__ = ["fans", "register_layout"]

LayoutFn = Callable[[nn.Module, str], "Fans | None"]
LayoutKey = Union[type, str]
"""A module class, or its qualified name ``"package.module.ClassName"``."""

_LAYOUTS: dict[LayoutKey, LayoutFn] = {}
"""User registrations, by class or qualified name; consulted before the built-in layout of the
same class."""
_QUALIFIED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")

M = TypeVar("M", bound=nn.Module)


@overload
def register_layout(module_type: LayoutKey, fn: LayoutFn) -> LayoutFn: ...


@overload
def register_layout(
    module_type: LayoutKey, fn: None = None
) -> Callable[[LayoutFn], LayoutFn]: ...


def register_layout(
    module_type: LayoutKey, fn: LayoutFn | None = None
) -> LayoutFn | Callable[[LayoutFn], LayoutFn]:
    """Register the layout of ``module_type`` and of its subclasses.

    ``fn(module, name)`` returns the semantic :class:`Fans` of parameter ``name`` of ``module``, or
    ``None`` when it does not know that parameter; the lookup then goes on along the MRO of
    ``type(module)`` and ends in the assumed torch-rule fallback. A registration overrides the
    built-in layout of the same type, and replaces an earlier registration.

    Usable directly, ``register_layout(MyLayer, fn)``, or as a decorator,
    ``@register_layout(MyLayer)``. A layer of another library can be registered by its
    qualified name, ``register_layout("package.module.ClassName", fn)``, without importing it:
    the name matches a class whose ``__module__ + "." + __qualname__`` it is (the module that
    defines the class, not one that re-exports it).

    Args:
        module_type: A subclass of ``torch.nn.Module``, or its qualified name.
        fn: The layout function; omitted for the decorator form.

    Returns:
        ``fn``, or a decorator that registers and returns its argument.

    Raises:
        ConfigError: if ``module_type`` is neither an ``nn.Module`` subclass nor a dotted class
            name, or ``fn`` is not callable.
    """
    _check_layout_key(module_type)
    shown = module_type if isinstance(module_type, str) else module_type.__name__

    def register(layout: LayoutFn) -> LayoutFn:
        if not callable(layout):
            raise ConfigError(
                f"the layout registered for {shown} must be callable as"
                f" fn(module, name) -> Fans | None, got {layout!r}."
            )
        _LAYOUTS[module_type] = layout
        return layout

    return register if fn is None else register(fn)


def _check_layout_key(module_type: object) -> None:
    """Raise ConfigError unless ``module_type`` is an nn.Module class or a dotted class name."""
    if isinstance(module_type, str):
        if not _QUALIFIED_NAME.fullmatch(module_type):
            raise ConfigError(
                f"register_layout takes a class name as 'package.module.ClassName', got"
                f" {short_repr(module_type)}; pass the class itself when it can be imported."
            )
    elif not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise ConfigError(
            f"register_layout needs a subclass of torch.nn.Module as module_type, got"
            f" {short_repr(module_type)}; pass the class itself, e.g. register_layout(MyLayer,"
            f" fn), or its qualified name, e.g. register_layout('package.module.MyLayer', fn)."
        )


def fans(module: nn.Module, name: str, convention: FanConvention = "semantic") -> Fans:
    """Fans of parameter ``name`` of ``module``.

    Args:
        module: The layer that owns the parameter.
        name: A direct parameter name of ``module``, e.g. ``"weight"`` or ``"weight_ih_l0"``.
        convention: ``"semantic"`` derives the fans from what the layer computes, through the
            layout registered for ``type(module)`` or a base class; a parameter no layout knows
            gets torch's axis-order fans marked ``assumed=True``. ``"torch"`` reproduces
            ``torch.nn.init._calculate_fan_in_and_fan_out`` on the parameter, and for a 1-D bias
            the fans of its weight, as ``reset_parameters`` of ``nn.Linear`` and ``nn.Conv*`` use.

    Returns:
        The parameter's :class:`Fans`.

    Raises:
        ConfigError: for an unknown ``convention``.
        FanError: for an unknown or unmaterialized parameter, or one whose fans cannot be
            determined under ``convention``.
    """
    if convention not in FAN_CONVENTIONS:
        raise ConfigError(f"convention must be one of {FAN_CONVENTIONS}, got {convention!r}")
    param = _parameter(module, name)
    if convention == "torch":
        return _torch_convention(module, name, param)
    semantic = _layout_fans(module, name)
    return semantic if semantic is not None else _assumed(module, name, param)


def _parameter(module: nn.Module, name: str) -> nn.Parameter:
    """The direct parameter ``name`` of ``module``, materialized."""
    param = module._parameters.get(name)
    kind = type(module).__name__
    if param is None:
        params = [n for n, p in module._parameters.items() if p is not None]
        hint = " Pass the submodule that owns it." if "." in name else suggest(name, params)
        raise FanError(
            f"{kind} has no parameter {name!r}; its parameters are {sorted(params)}.{hint}"
        )
    if isinstance(param, UninitializedParameter):
        raise FanError(
            f"{kind} parameter {name!r} is not materialized yet, so it has no shape; run one"
            f" forward pass through the lazy module before asking for its fans."
        )
    return param


def _what(module: nn.Module, name: str, param: nn.Parameter) -> str:
    return f"{type(module).__name__} {describe_target(name, param.shape)}"


def _paired_weight(module: nn.Module, name: str) -> nn.Parameter | None:
    """The >=2-D weight a bias-like parameter is added to (``bias`` -> ``weight``, ``x_bias`` ->
    ``x_weight``), or None."""
    if "bias" not in name:
        return None
    weight = dict(module.named_parameters(recurse=False)).get(name.replace("bias", "weight"))
    return weight if weight is not None and weight.dim() >= 2 else None


def _torch_rule_source(module: nn.Module, name: str, param: nn.Parameter) -> nn.Parameter | None:
    """The tensor whose shape torch's rule reads: the parameter itself, or a 1-D bias's weight."""
    return param if param.dim() >= 2 else _paired_weight(module, name)


def _torch_convention(module: nn.Module, name: str, param: nn.Parameter) -> Fans:
    source = _torch_rule_source(module, name, param)
    if source is None:
        raise FanError(
            f"{_what(module, name, param)} has fewer than 2 dimensions and no weight of 2 or"
            f" more dimensions beside it, so torch's fan rule is undefined for it; use"
            f" convention='semantic' or pass fans= explicitly."
        )
    return torch_fans(source.shape, _what(module, name, param))


def _assumed(module: nn.Module, name: str, param: nn.Parameter) -> Fans:
    """Fallback for parameters no layout knows: torch's rule, marked ``assumed=True``."""
    source = _torch_rule_source(module, name, param)
    kind = type(module).__name__
    if source is None:
        raise FanError(
            f"no layout gives the fans of {_what(module, name, param)}, and with fewer than 2"
            f" dimensions and no weight beside it torch's rule cannot stand in. Register one with"
            f" torchinit.register_layout({kind}, fn) where fn(module, name) returns"
            f" torchinit.Fans, or pass fans= explicitly."
        )
    return replace(torch_fans(source.shape, _what(module, name, param)), assumed=True)


def qualified_name(cls: type) -> str:
    """``"package.module.ClassName"``: the key a layout registered by name matches."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _layouts_for(module_type: type) -> Iterator[LayoutFn]:
    """Layouts along the MRO, a user registration before the built-in one of the same class,
    and for each a registration by class before one by qualified name."""
    for cls in module_type.__mro__:
        name = qualified_name(cls)
        for layout in (_LAYOUTS.get(cls), _LAYOUTS.get(name), _BUILTIN_LAYOUTS.get(cls),
                       _THIRD_PARTY_LAYOUTS.get(name)):
            if layout is not None:
                yield layout


def _layout_fans(module: nn.Module, name: str) -> Fans | None:
    for layout in _layouts_for(type(module)):
        result = layout(module, name)
        if result is None:
            continue
        if not isinstance(result, Fans):
            raise ConfigError(
                f"the layout {layout!r} for {type(module).__name__} returned {result!r} for"
                f" parameter {name!r}; a layout must return torchinit.Fans or None."
            )
        return result
    return None


# Built-in layouts ---------------------------------------------------------------------------


def _blocks(names: Sequence[str], size: int) -> tuple[Block, ...]:
    """Consecutive row blocks of ``size`` rows each, one per name."""
    return tuple(Block(block, j * size, (j + 1) * size) for j, block in enumerate(names))


def _weight_and_bias(fans_of: Callable[[M], Fans]) -> Callable[[M, str], Fans | None]:
    """Layout of a layer whose ``bias`` is added to the output of ``weight``: both share fans."""

    def layout(module: M, name: str) -> Fans | None:
        return fans_of(module) if name in ("weight", "bias") else None

    return layout


def _as_layout(layout: Callable[[M, str], Fans | None]) -> LayoutFn:
    """``layout``, which takes one module class, as a :data:`LayoutFn`: a built-in layout is
    keyed by that class and only called with its instances (found along the module's MRO)."""
    return cast(LayoutFn, layout)


def _linear(module: nn.Linear) -> Fans:
    """``y = x W^T + b``: each output sums ``in_features`` products."""
    return Fans(module.in_features, module.out_features)


def _input_major(module: nn.Module) -> Fans:
    """``y = x W + b`` with ``W`` stored ``(in, out)``, the transpose of ``nn.Linear``'s
    (transformers' ``Conv1D`` of GPT-2, weight ``(nx, nf)``): fan_in = ``nx``, fan_out = ``nf``."""
    fan_in, fan_out = cast(torch.Tensor, module.weight).shape
    return Fans(fan_in, fan_out)


def _bilinear(module: nn.Bilinear) -> Fans:
    """``y_o = x1^T W_o x2 + b_o``: each output sums ``in1 * in2`` products; each feature of x1
    reaches the ``out * in2`` weights of its slice ``W[:, i, :]``."""
    in2 = module.in2_features
    return Fans(module.in1_features * in2, module.out_features * in2)


def _conv(module: nn.modules.conv._ConvNd) -> Fans:
    """Convolution and transposed convolution with ``g`` groups and ``k = prod(kernel_size)``:
    fan_in = ``in/g * k``, fan_out = ``out/g * k``, whatever axis order the weight is stored in."""
    taps = math.prod(module.kernel_size)
    groups = module.groups
    return Fans(
        module.in_channels // groups * taps,
        module.out_channels // groups * taps,
        receptive_field=taps,
    )


def _lookup(module: nn.Embedding | nn.EmbeddingBag) -> Fans:
    """A lookup is a Linear fed a one-hot: each output element is one weight (fan_in = 1), each
    index reaches ``embedding_dim`` outputs. LeCun/He in fan_in mode then give unit variance."""
    return Fans(1, module.embedding_dim)


def _per_feature(module: nn.Module) -> Fans:
    """Per-feature affine (norm layers, PReLU): each output is one weight times one input."""
    return Fans(1, 1)


def _channel_gain(module: nn.Module, name: str) -> Fans | None:
    """timm's ``ScaledStdConv2d(Same)``: ``gain`` ``(out, 1, 1, 1)`` scales each output channel,
    a per-feature affine; ``weight`` and ``bias`` are left to the ``nn.Conv2d`` layout."""
    return _per_feature(module) if name == "gain" else None


_RNN_PARAM = re.compile(r"(?:weight|bias)_(ih|hh|hr)_l(\d+)(?:_reverse)?")
_CELL_PARAM = re.compile(r"(?:weight|bias)_(ih|hh)")
_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")
_GATES_BY_MODE = {"RNN_TANH": (), "RNN_RELU": (), "LSTM": _LSTM_GATES, "GRU": _GRU_GATES}


def _recurrent(matrix: str, input_size: int, hidden: int, state: int, gates: Sequence[str]) -> Fans:
    """Fans of one recurrent matrix, per gate block of ``hidden`` rows.

    ``ih`` maps the layer input (``input_size``) and ``hh`` the recurrent state (``state``: the
    projection size, or ``hidden``) to ``hidden`` units per gate; ``hr`` projects the ``hidden``
    units to ``state``. A plain RNN has one gate and gets no blocks.
    """
    if matrix == "hr":
        return Fans(hidden, state)
    fan_in = input_size if matrix == "ih" else state
    blocks = _blocks(gates, hidden) if len(gates) > 1 else ()
    return Fans(fan_in, hidden, blocks=blocks)


def _rnn(module: nn.RNNBase, name: str) -> Fans | None:
    """``weight/bias_{ih,hh}_l{k}[_reverse]`` and ``weight_hr_l{k}[_reverse]`` of RNN/LSTM/GRU;
    layer ``k > 0`` reads both directions' outputs, ``D * (proj_size or hidden_size)`` features."""
    match = _RNN_PARAM.fullmatch(name)
    if match is None:
        return None
    matrix, layer = match.group(1), int(match.group(2))
    state = module.proj_size or module.hidden_size
    directions = 2 if module.bidirectional else 1
    input_size = module.input_size if layer == 0 else directions * state
    gates = _GATES_BY_MODE[module.mode]
    return _recurrent(matrix, input_size, module.hidden_size, state, gates)


def _cell(module: nn.RNNCellBase, name: str, gates: Sequence[str]) -> Fans | None:
    """``weight/bias_{ih,hh}`` of RNNCell/LSTMCell/GRUCell."""
    match = _CELL_PARAM.fullmatch(name)
    if match is None:
        return None
    hidden = module.hidden_size
    return _recurrent(match.group(1), module.input_size, hidden, hidden, gates)


def _attention(module: nn.MultiheadAttention, name: str) -> Fans | None:
    """Input projections of multi-head attention, each mapping its input to ``embed_dim`` outputs.

    The packed ``in_proj_weight`` holds the q, k and v projections as row blocks. ``bias_k`` and
    ``bias_v`` (shape ``(1, 1, E)``) are appended as one extra projected key and value, so they
    take the fans of an ``E x E`` projection, as torch's xavier_normal_ on them does.
    """
    embed = module.embed_dim
    packed = Fans(embed, embed, blocks=_blocks(("q", "k", "v"), embed))
    by_name = {
        "in_proj_weight": packed,
        "in_proj_bias": packed,
        "q_proj_weight": Fans(embed, embed),
        "k_proj_weight": Fans(module.kdim, embed),
        "v_proj_weight": Fans(module.vdim, embed),
        "bias_k": Fans(embed, embed),
        "bias_v": Fans(embed, embed),
    }
    return by_name.get(name)


_CONVS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)

_BUILTIN_LAYOUTS: dict[type, LayoutFn] = {
    nn.Linear: _as_layout(_weight_and_bias(_linear)),
    nn.Bilinear: _as_layout(_weight_and_bias(_bilinear)),
    **dict.fromkeys(_CONVS, _as_layout(_weight_and_bias(_conv))),
    nn.Embedding: _as_layout(_weight_and_bias(_lookup)),
    nn.EmbeddingBag: _as_layout(_weight_and_bias(_lookup)),
    nn.RNNBase: _as_layout(_rnn),
    nn.RNNCell: partial(_cell, gates=()),
    nn.LSTMCell: partial(_cell, gates=_LSTM_GATES),
    nn.GRUCell: partial(_cell, gates=_GRU_GATES),
    nn.MultiheadAttention: _as_layout(_attention),
    **dict.fromkeys(NORM_TYPES, _weight_and_bias(_per_feature)),
    nn.PReLU: _weight_and_bias(_per_feature),
}


_THIRD_PARTY_LAYOUTS: dict[str, LayoutFn] = {
    "transformers.pytorch_utils.Conv1D": _weight_and_bias(_input_major),
    "timm.layers.std_conv.ScaledStdConv2d": _channel_gain,
    "timm.layers.std_conv.ScaledStdConv2dSame": _channel_gain,
}
"""Layouts of other libraries' layers, by qualified class name, so their modules are never
imported here. timm's ``Linear``, ``Conv2dSame`` and ``StdConv2d(Same)`` need none: they
subclass ``nn.Linear`` / ``nn.Conv2d`` and compute what it does, so its layout gives their
fans."""
