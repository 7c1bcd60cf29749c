"""Predicted activation and gradient scales: the variance recursions of Glorot & Bengio (2010)
and He et al. (2015), propagated through the layers the model actually has.

Moments are carried as (mean, variance) of the elements of a tensor, over the batch and the
units. For a layer ``y = W x + b`` whose output sums ``n_in`` products (weights zero-mean and
independent of the input):

    Var(y) = n_in * E[w^2] * E[x^2] + Var(b),   E[y] = E[b]

and backwards, for the gradient ``g`` of the loss with respect to a tensor, each input reaching
``n_out`` outputs:

    E[g_x^2] = n_out * E[w^2] * E[g_y^2].

An elementwise activation ``f`` of a Gaussian pre-activation ``z ~ N(m, v)`` gives
``E[f(z)]``, ``E[f(z)^2]`` and ``E[f'(z)^2]`` (the backward factor) by numerical integration
against the Gaussian density; for ReLU this is ``E[relu(z)^2] = v / 2`` at ``m = 0``, the halving
behind the He gain. Normalization layers reset the moments to their affine parameters'.
A module the recursion does not cover gets no prediction (``None``), and neither does anything
computed from its output.

Merges computed between the modules follow the data flow too. A sum ``c + sum(a_i x_i)`` of
uncorrelated terms has ``E = c + sum(a_i E[x_i])`` and ``Var = sum(a_i^2 Var(x_i))``: a
residual block ``x + f(x)`` gives ``Var(x) + Var(f(x))``. Terms are taken as uncorrelated when
no random source reaches both: a dense, conv or embedding layer (its weights zero-mean and
independent of its input) is a fresh source, every other module passes on its input's
sources, a merge the union of its operands'. So ``x + f(x)`` with a linear layer in ``f`` is
predicted, ``x + norm(x)`` or ``x + x`` is not. A concatenation mixes its operands' moments by
element count.

An output is *zero by plan* when the recursion predicts exactly 0 for it and the zero comes from
the manifest: the layer's ``weight`` is a manifest-recorded zero (``zero_init_residual``'s norm
scales, a zero-initialized output layer), or its input, or every operand of a merge, is zero by
plan. A layer whose weight or norm scale is exactly 0 outputs its bias whatever its input, so
it is predicted even after a module the recursion does not cover. The outputs that reach one
zero by plan *feed* it: no gradient may come back through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .._norms import PER_SAMPLE_NORM_TYPES
from ..errors import TorchinitError
from .._plan.manifest import Manifest
from .hooks import MODEL_INPUT, Concat, Entry, Node, Sum

__all__ = ["Moments", "ParamMoments", "Prediction", "predict"]

ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus,
    nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.LogSigmoid, nn.Threshold)
"""Activation modules applied element by element (deterministic in train and eval mode)."""

SHAPE_ONLY: tuple[type[nn.Module], ...] = (nn.Identity, nn.Flatten, nn.Unflatten)
DROPOUT: tuple[type[nn.modules.dropout._DropoutNd], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)

_GRID = torch.linspace(-10.0, 10.0, 4001, dtype=torch.float64)
_DENSITY = torch.exp(-0.5 * _GRID**2) / torch.exp(-0.5 * _GRID**2).sum()


@dataclass(frozen=True)
class Moments:
    """Mean and variance of the elements of a tensor."""

    mean: float
    var: float

    @property
    def m2(self) -> float:
        """Second moment ``E[x^2] = Var + mean^2``."""
        return self.var + self.mean**2

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))


ZERO = Moments(0.0, 0.0)


class ParamMoments:
    """Moments of a parameter's entries: from its manifest record (the initializer's exact
    mean and std, times the record's scale) where the record describes the values, otherwise
    from the values the parameter holds."""

    def __init__(self, model: nn.Module, manifest: Manifest | None) -> None:
        self._paths = {id(p): path for path, p in model.named_parameters()}
        self._records = {r.path: r for r in manifest} if manifest is not None else {}
        self.sources: set[str] = set()

    def _planned(self, tensor: torch.Tensor) -> Moments | None:
        """The moments the manifest record of ``tensor`` gives, where it describes them."""
        path = self._paths.get(id(tensor))
        record = self._records.get(path) if path is not None else None
        if record is None or record.init is None or record.blocks or record.std is None \
                or record.values is not None:
            return None
        try:
            mean = record.init.mean_value(record.fans, record.shape)
        except TorchinitError:  # a moment the scheme cannot state for this shape (a zero fan)
            return None
        return Moments(mean * record.scale, (record.std * record.scale) ** 2)

    def __call__(self, module: nn.Module, name: str) -> Moments | None:
        tensor = getattr(module, name, None)
        if not isinstance(tensor, torch.Tensor):
            return None
        planned = self._planned(tensor)
        if planned is not None:
            self.sources.add("manifest")
            return planned
        self.sources.add("weights")
        var, mean = torch.var_mean(tensor.detach().double(), correction=0)
        return Moments(float(mean), float(var))

    def planned_zero(self, module: nn.Module, name: str) -> bool:
        """Whether the manifest sets ``module.<name>`` to exactly zero."""
        tensor = getattr(module, name, None)
        return isinstance(tensor, torch.Tensor) and self._planned(tensor) == ZERO


def _affine_of(normalized: Moments | None, params: ParamMoments,
               module: nn.Module) -> Moments | None:
    """Moments of ``gamma * x + beta`` for a norm layer's scale ``gamma`` (default 1) and shift
    ``beta`` (default 0), independent of ``x``; for unknown ``x``, ``beta``'s where ``gamma``
    is exactly 0, else ``None``."""
    gamma = params(module, "weight") or Moments(1.0, 0.0)
    beta = params(module, "bias") or ZERO
    if normalized is None:
        return beta if gamma == ZERO else None
    mean = gamma.mean * normalized.mean + beta.mean
    m2 = gamma.m2 * normalized.m2 + 2 * gamma.mean * beta.mean * normalized.mean + beta.m2
    return Moments(mean, m2 - mean**2)


def _running_normalized(module: nn.modules.batchnorm._NormBase, inp: Moments) -> Moments:
    """Moments of ``(x - running_mean) / sqrt(running_var + eps)``, averaged over channels."""
    running_mean, running_var = module.running_mean, module.running_var
    assert running_mean is not None and running_var is not None  # eval mode, tracking stats
    shift = inp.mean - running_mean.double()
    denom = running_var.double() + module.eps
    mean = float((shift / denom.sqrt()).mean())
    return Moments(mean, float(((shift**2 + inp.var) / denom).mean()) - mean**2)


def _average_taps(positions: int, length: int, k: int, stride: int, pad: int,
                  dilation: int) -> float:
    """Average over output ``positions`` of the kernel taps that land inside an input of
    ``length`` (the rest read zero padding)."""
    valid = sum(sum(0 <= o * stride - pad + j * dilation < length for j in range(k))
                for o in range(positions))
    return valid / max(positions, 1)


def _conv_connections(module: nn.modules.conv._ConvNd, entry: Entry) -> tuple[float, float]:
    """Average terms per output and outputs per input of a (transposed) convolution, counting
    only kernel taps inside the input: zero padding at the borders removes terms."""
    dims = len(module.kernel_size)
    if entry.input_shape is None:
        taps = [float(k) for k in module.kernel_size]
        inner, outer = [1.0] * dims, [1.0 / s for s in module.stride]
    else:
        inner = [float(n) for n in entry.input_shape[-dims:]]
        outer = [float(n) for n in entry.stats.shape[-dims:]]
        if module.transposed:  # the adjoint of a conv from the output length to the input's
            inner, outer = outer, inner
        if isinstance(module.padding, str):
            pads = [0 if module.padding == "valid" else d * (k - 1) // 2
                    for k, d in zip(module.kernel_size, module.dilation)]
        else:
            pads = list(module.padding)
        taps = [_average_taps(int(o), int(n), k, s, p, d) if module.padding_mode == "zeros"
                else float(k) for n, o, k, s, p, d in zip(inner, outer, module.kernel_size,
                                                          module.stride, pads, module.dilation)]
    per_output = math.prod(taps)
    per_input = math.prod(t * o / n for t, o, n in zip(taps, outer, inner))
    n_in, n_out = module.in_channels // module.groups, module.out_channels // module.groups
    if module.transposed:
        return n_in * per_input, n_out * per_output
    return n_in * per_output, n_out * per_input


def _connections(entry: Entry) -> tuple[float, float] | None:
    """(terms summed into one output, outputs one input reaches) of a dense or conv layer."""
    module = entry.module
    if isinstance(module, nn.Linear):
        return float(module.in_features), float(module.out_features)
    if isinstance(module, nn.modules.conv._ConvNd):
        return _conv_connections(module, entry)
    return None


def _elementwise_fn(module: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """The activation as a float64 function of a ``(points, channels)`` tensor, and channels."""
    if isinstance(module, nn.PReLU):
        slopes = module.weight.detach().double()
        return (lambda x: F.prelu(x, slopes)), module.num_parameters
    return module.forward, 1


def gaussian_expectations(module: nn.Module, z: Moments) -> tuple[float, float, float]:
    """``E[f(z)]``, ``E[f(z)^2]`` and ``E[f'(z)^2]`` for ``z ~ N(z.mean, z.var)``.

    Trapezoidal integration over ``mean +- 10 std`` on 4001 points (error below 1e-4 relative
    at the kinks of ReLU-like functions, far smaller for smooth ones); averaged over channels
    for a multi-slope ``PReLU``.
    """
    fn, channels = _elementwise_fn(module)
    points = z.mean + z.std * _GRID
    with torch.enable_grad():
        x = points[:, None].expand(-1, channels).clone().requires_grad_(True)
        y = fn(x * 1.0)  # a non-leaf input, so in-place activations are allowed
        (slope,) = torch.autograd.grad(y.sum(), x)
    y = y.detach()
    weights = _DENSITY[:, None]
    return (float((weights * y).sum(0).mean()), float((weights * y**2).sum(0).mean()),
            float((weights * slope**2).sum(0).mean()))


def forward_moments(entry: Entry, inp: Moments | None, params: ParamMoments) -> Moments | None:
    """Moments of the entry's output given its input's; ``None`` where not covered."""
    module = entry.module
    if isinstance(module, nn.Embedding):
        return params(module, "weight")
    if isinstance(module, PER_SAMPLE_NORM_TYPES) or (
            isinstance(module, nn.modules.batchnorm._NormBase)
            and (module.training or module.running_mean is None)):
        return _affine_of(Moments(0.0, 1.0), params, module)
    if isinstance(module, nn.modules.batchnorm._NormBase):  # eval mode: running statistics
        return _affine_of(None if inp is None else _running_normalized(module, inp), params,
                          module)
    fans = _connections(entry)
    if fans is not None:
        return _dense_moments(module, fans[0], inp, params)
    if inp is None:
        return None
    if isinstance(module, SHAPE_ONLY) or (isinstance(module, DROPOUT) and not module.training):
        return inp
    if isinstance(module, DROPOUT):
        keep = 1.0 - module.p
        return ZERO if keep == 0 else Moments(inp.mean, inp.m2 / keep - inp.mean**2)
    if hasattr(nn, "RMSNorm") and isinstance(module, nn.RMSNorm):
        mean = inp.mean / math.sqrt(inp.m2) if inp.m2 > 0 else 0.0
        return _affine_of(Moments(mean, 1.0 - mean**2), params, module)
    if isinstance(module, ELEMENTWISE):
        mean, m2, _ = gaussian_expectations(module, inp)
        return Moments(mean, m2 - mean**2)
    return None


def _dense_moments(module: nn.Module, n_in: float, inp: Moments | None,
                   params: ParamMoments) -> Moments | None:
    """Moments of ``W x + b`` summing ``n_in`` products; ``b``'s alone where ``W`` is exactly
    0, whatever ``x``."""
    weight = params(module, "weight")
    if weight is None:
        return None
    bias = params(module, "bias") or ZERO
    if weight == ZERO:
        return bias
    if inp is None:
        return None
    return Moments(bias.mean, n_in * weight.m2 * inp.m2 + bias.var)


def backward_factor(entry: Entry, inp: Moments | None, params: ParamMoments) -> float | None:
    """``E[g_in^2] / E[g_out^2]`` through the entry's module; ``None`` where not covered."""
    module = entry.module
    if isinstance(module, SHAPE_ONLY) or (isinstance(module, DROPOUT) and not module.training):
        return 1.0
    if isinstance(module, DROPOUT):
        return 0.0 if module.p == 1 else 1.0 / (1.0 - module.p)
    if isinstance(module, ELEMENTWISE):
        return None if inp is None else gaussian_expectations(module, inp)[2]
    fans = _connections(entry)
    weight = params(module, "weight")
    return None if fans is None or weight is None else fans[1] * weight.m2


def _mixes(entry: Entry) -> bool:
    """Whether the entry is a fresh random source: a dense, conv or embedding layer, whose
    zero-mean weights make its output uncorrelated with what they are independent of."""
    return isinstance(entry.module, nn.Embedding) or _connections(entry) is not None


INPUT_SOURCE, UNKNOWN_SOURCE = "input", "unknown"
"""The sources of the model input and of an input an untracked function computed (two such
inputs may be correlated, so they share one source)."""


@dataclass(frozen=True)
class Flow:
    """What the recursion knows of one node's output: its moments (``None`` where not
    covered), the random sources its values derive from (the ``id`` of each dense, conv or
    embedding module on the way, or one of the sources above), and whether it is zero by
    plan."""

    moments: Moments | None
    sources: frozenset[object]
    zero_by_plan: bool = False


def _entry_flow(entry: Entry, inp: Flow | None, params: ParamMoments) -> Flow:
    moments = forward_moments(entry, None if inp is None else inp.moments, params)
    if _mixes(entry):
        sources: frozenset[object] = frozenset({id(entry.module)})
    else:
        sources = frozenset({UNKNOWN_SOURCE}) if inp is None else inp.sources
    zero = moments == ZERO and (params.planned_zero(entry.module, "weight")
                                or (inp is not None and inp.zero_by_plan))
    return Flow(moments, sources, zero)


def _merge_flow(node: Sum | Concat, operands: Sequence[Flow | None]) -> Flow:
    """A sum of uncorrelated terms, or a concatenation, of the operands' flows."""
    known = [f for f in operands if f is not None]
    sources = frozenset().union(*(f.sources for f in known)) if known else frozenset()
    moments: Moments | None = None
    parts = [f.moments for f in known if f.moments is not None]
    if len(parts) == len(operands):  # every operand known, with moments
        if isinstance(node, Concat):
            total = sum(node.sizes)
            mean = sum(n * m.mean for n, m in zip(node.sizes, parts)) / total
            m2 = sum(n * m.m2 for n, m in zip(node.sizes, parts)) / total
            moments = Moments(mean, m2 - mean**2)
        elif sum(len(f.sources) for f in known) == len(sources):  # no source in two terms
            moments = Moments(
                node.offset + sum(c * m.mean for c, m in zip(node.coefficients, parts)),
                sum(c**2 * m.var for c, m in zip(node.coefficients, parts)))
    zero = moments == ZERO and all(f.zero_by_plan for f in known)
    return Flow(moments, sources, zero)


def propagate(nodes: Sequence[Node], input_moments: Moments | None,
              params: ParamMoments) -> list[Flow]:
    """The :class:`Flow` of every node, in order (each node's inputs come before it)."""
    model_input = Flow(input_moments, frozenset({INPUT_SOURCE}))
    flows: list[Flow] = []

    def flow_of(index: int | None) -> Flow | None:
        if index is None:
            return None
        return model_input if index == MODEL_INPUT else flows[index]

    for node in nodes:
        if isinstance(node, Entry):
            flows.append(_entry_flow(node, flow_of(node.parent), params))
        else:
            flows.append(_merge_flow(node, [flow_of(i) for i in node.operands]))
    return flows


def feeding(nodes: Sequence[Node], targets: set[int]) -> set[int]:
    """The nodes whose output reaches one of ``targets`` (the targets included)."""
    reached = set(targets)
    for i in range(len(nodes) - 1, -1, -1):  # a node's inputs come before it
        if i in reached:
            node = nodes[i]
            inputs = [node.parent] if isinstance(node, Entry) else node.operands
            reached.update(j for j in inputs if j is not None and j != MODEL_INPUT)
    return reached


@dataclass(frozen=True)
class Prediction:
    """Per entry: the predicted output std and gradient std (``None`` where unavailable),
    whether the output is zero by plan, and whether it feeds an output zero by plan."""

    std: tuple[float | None, ...]
    grad_std: tuple[float | None, ...]
    zero_by_plan: tuple[bool, ...]
    feeds_zero_by_plan: tuple[bool, ...]


def is_chain(nodes: Sequence[Node], output_node: int | None) -> bool:
    """Whether the nodes are entries (no merges) forming one chain: each takes the previous
    one's output (the first the model input, or none, as an embedding), each output is used
    once, the last is the model's output."""
    entries = [n for n in nodes if isinstance(n, Entry)]
    if not entries or len(entries) < len(nodes) or output_node != len(entries) - 1:
        return False
    linked = all(e.parent == i - 1 for i, e in enumerate(entries) if i > 0)
    return linked and entries[0].parent in (MODEL_INPUT, None) and all(
        e.consumers == 1 for e in entries[:-1])


def predict(nodes: Sequence[Node], input_moments: Moments | None, output_node: int | None,
            params: ParamMoments) -> Prediction:
    """Propagate moments forward along the recorded data flow, and gradients backward from
    the measured gradient at the model's output when the nodes form one chain of entries."""
    flows = propagate(nodes, input_moments, params)
    entries = [n for n in nodes if isinstance(n, Entry)]
    grads: list[float | None] = [None] * len(nodes)
    if is_chain(nodes, output_node) and entries[-1].grad_std is not None:
        grads[-1] = entries[-1].grad_std ** 2
        for i in range(len(entries) - 1, 0, -1):
            factor = backward_factor(entries[i], flows[i - 1].moments, params)
            grad = grads[i]
            if factor is None or grad is None:
                break
            grads[i - 1] = factor * grad
    kept = [i for i, n in enumerate(nodes) if isinstance(n, Entry)]
    feeds = feeding(nodes, {i for i, f in enumerate(flows) if f.zero_by_plan})
    moments = [flows[i].moments for i in kept]
    grad_m2 = [grads[i] for i in kept]
    return Prediction(
        tuple(None if m is None else m.std for m in moments),
        tuple(None if g is None else math.sqrt(g) for g in grad_m2),
        tuple(flows[i].zero_by_plan for i in kept), tuple(i in feeds for i in kept))
