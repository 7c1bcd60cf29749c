"""ti.inspect on graphs: residual adds and other merges in the prediction, outputs that are zero
by plan, and the torchvision ResNet with the ``resnet`` preset."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit._diagnostics import Report, inspect

from .thirdparty import importable

WIDTH = 64
SCALE, SHIFT = 2.0, 0.5  # the input batch: N(SHIFT, SCALE^2)
WEIGHT_STD = 0.1


def batch(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def x_batch() -> torch.Tensor:
    return batch(512, WIDTH) * SCALE + SHIFT


class Merge(nn.Module):
    """``out(merge(x, fc(x)))``: ``out`` is an Identity row showing the merge's prediction."""

    def __init__(self, merge: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fc = nn.Linear(WIDTH, WIDTH)
        self.out = nn.Identity()
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.merge(x, self.fc(x)))


def in_place(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    h += x  # torchvision's ``out += identity``
    return h


def add_(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return h.add_(x, alpha=0.5)


def manifest_of(model: nn.Module) -> ti.Manifest:
    return ti.apply(model, ti.Plan([ti.Rule(name="weight", init=ti.Normal(0.0, WEIGHT_STD)),
                                    ti.Rule(name="bias", init=ti.Zeros())]), seed=1)


# (merge, coefficient of x, coefficient of fc(x), offset)
SUMS = {
    "x + f(x)": (lambda x, h: x + h, 1.0, 1.0, 0.0),
    "out += identity": (in_place, 1.0, 1.0, 0.0),
    "torch.add": (lambda x, h: torch.add(x, h), 1.0, 1.0, 0.0),
    "torch.add alpha": (lambda x, h: torch.add(x, h, alpha=0.5), 1.0, 0.5, 0.0),
    "add_ alpha": (add_, 0.5, 1.0, 0.0),
    "x - f(x)": (lambda x, h: x - h, 1.0, -1.0, 0.0),
    "scaled residual": (lambda x, h: 0.5 * x + h / 4, 0.5, 0.25, 0.0),
    "shifted": (lambda x, h: 1 - (x + h + 3), -1.0, -1.0, -2.0),
}


@pytest.mark.parametrize("form", list(SUMS))
def test_a_sum_of_independent_terms_adds_their_variances(form):
    merge, cx, ch, offset = SUMS[form]
    model = Merge(merge)
    manifest = manifest_of(model)
    x = x_batch()
    report = inspect(model, x, manifest=manifest)
    fc, out = report.layers
    assert [fc.layer, out.layer] == ["fc", "out"]
    var_x, mean_x = (float(v) for v in torch.var_mean(x.double(), correction=0))
    var_h = WIDTH * WEIGHT_STD**2 * (var_x + mean_x**2)  # Var(W x), E[W x] = 0
    assert fc.predicted_std == pytest.approx(math.sqrt(var_h), rel=1e-9)
    # E = offset + cx E[x];  Var = cx^2 Var(x) + ch^2 Var(W x)
    expected = math.sqrt(cx**2 * var_x + ch**2 * var_h)
    assert out.predicted_std == pytest.approx(expected, rel=1e-9)
    assert out.std == pytest.approx(expected, rel=0.05)
    assert out.mean == pytest.approx(offset + cx * mean_x, abs=0.1)
    assert report.warnings == ()


@pytest.mark.parametrize("merge", [lambda x, h: x + x, lambda x, h: h + 2 * h],
                         ids=["x + x", "h + 2h"])
def test_correlated_terms_get_no_prediction(merge):
    report = inspect(Merge(merge), x_batch())
    assert report.layers[-1].predicted_std is None


def test_a_residual_around_a_norm_is_correlated():
    class NormResidual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(WIDTH)
            self.out = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(x + self.norm(x))  # no weight layer decorrelates the two terms

    assert inspect(NormResidual(), x_batch()).layers[-1].predicted_std is None


def test_concatenation_mixes_the_moments_by_element_count():
    class Cat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(WIDTH, 3 * WIDTH)
            self.b = nn.Linear(WIDTH, WIDTH)
            self.out = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.cat([self.a(x), self.b(x) + 1.0], dim=1))

    model = Cat()
    manifest = manifest_of(model)
    x = x_batch()
    a, b, out = inspect(model, x, manifest=manifest).layers
    var = WIDTH * WEIGHT_STD**2 * float((x.double() ** 2).mean())  # both layers
    # 3/4 of the elements N(0, var), 1/4 N(1, var): E[y^2] = var + 1/4, E[y] = 1/4
    expected = math.sqrt(var + 0.25 - 0.25**2)
    assert out.predicted_std == pytest.approx(expected, rel=1e-9)
    assert out.std == pytest.approx(expected, rel=0.05)


def test_other_in_place_writes_make_the_origin_unknown():
    class Clamped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(WIDTH, WIDTH)
            self.out = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            h.clamp_(min=0.0)  # not a merge: what follows has no prediction
            return self.out(h)

    report = inspect(Clamped(), x_batch())
    assert report.layers[0].predicted_std is not None
    assert report.layers[1].predicted_std is None
    assert report.warnings == ()


def test_functions_inside_a_leaf_module_are_not_merges():
    class Affine(nn.Module):  # a leaf module computing with functions
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 0.5 + 0.1

    model = nn.Sequential(nn.Linear(WIDTH, WIDTH), Affine(), nn.Linear(WIDTH, WIDTH))
    first, affine, last = inspect(model, x_batch()).layers
    assert affine.predicted_std is None and last.predicted_std is None  # not a covered module
    assert last.predicted_grad_std == pytest.approx(last.grad_std)  # still one chain


def test_gradients_are_predicted_only_along_a_chain():
    model = Merge(lambda x, h: x + h)
    report = inspect(model, x_batch())
    assert all(s.predicted_grad_std is None for s in report.layers)
    assert all(s.grad_std is not None for s in report.layers)


# -- zero by plan ---------------------------------------------------------------------------------
class Block(nn.Module):
    """A post-activation residual block: ``relu(x + norm2(fc2(relu(norm1(fc1(x))))))``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH)
        self.norm1, self.norm2 = nn.BatchNorm1d(WIDTH), nn.BatchNorm1d(WIDTH)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.fc2(self.relu(self.norm1(self.fc1(x)))))
        out += x
        return self.relu(out)


ZERO_LAST_NORM = ti.presets.get("torch") + [ti.Rule(path="norm2.weight", init=ti.Zeros())]


def test_a_zero_initialized_branch_is_expected_when_the_plan_says_so():
    model = Block()
    manifest = ti.apply(model, ZERO_LAST_NORM, seed=0)
    x = batch(256, WIDTH).relu()
    report = inspect(model, x, manifest=manifest)
    by_layer = {s.layer: s for s in report.layers}
    norm2, block_out = by_layer["norm2"], by_layer["relu#2"]
    assert norm2.dead_fraction == 1.0 and norm2.std == 0
    assert [s.layer for s in report.layers if s.zero_by_plan] == ["norm2"]
    assert norm2.predicted_std == 0
    # No gradient reaches the branch behind the zero scale, as planned.
    assert [s.layer for s in report.layers if s.zero_grad_by_plan] == [
        "fc1", "norm1", "relu#1", "fc2"]
    # relu(0 + x) = x: the block output is predicted from the identity alone.
    assert block_out.std == pytest.approx(float(x.std(correction=0)), rel=1e-6)
    assert block_out.predicted_std is not None
    assert 0.5 <= block_out.std / block_out.predicted_std <= 2
    assert report.warnings == ()
    table = report.table()
    assert "0 (plan)" in table and table.endswith("no warnings")


def test_zeros_the_plan_did_not_set_are_warned_about():
    model = Block()
    with torch.no_grad():
        model.norm2.weight.zero_()  # by hand: no manifest says the zeros are planned
    report = inspect(model, batch(256, WIDTH).relu())
    assert not any(s.zero_by_plan or s.feeds_zero_by_plan for s in report.layers)
    assert {(w.kind, w.layer) for w in report.warnings} == {
        ("dead", "norm2"), ("vanishing_gradients", None)}  # the branch gets no gradient


def test_a_planned_zero_that_the_weights_contradict_is_warned_about():
    model = Block()
    manifest = ti.apply(model, ZERO_LAST_NORM, seed=0)
    with torch.no_grad():
        model.norm2.weight.fill_(1.0)  # changed after the plan was applied
    report = inspect(model, batch(256, WIDTH).relu(), manifest=manifest)
    (finding,) = report.warnings
    assert finding.kind == "prediction" and finding.layer == "norm2"
    assert "predicted 0 " in finding.message


def test_eval_mode_norm_with_a_zero_scale_is_zero_whatever_its_input():
    class Functional(Block):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.norm2(self.fc2(torch.tanh(x)))  # fc2's input: an untracked function's
            return self.relu(out + self.fc1(x))

    model = Functional().eval()
    manifest = ti.apply(model, ZERO_LAST_NORM, seed=0)
    report = inspect(model, batch(64, WIDTH), manifest=manifest)
    by_layer = {s.layer: s for s in report.layers}
    assert by_layer["fc2"].predicted_std is None
    assert by_layer["norm2"].zero_by_plan
    assert report.warnings == ()


def test_a_zero_initialized_output_layer_is_not_vanishing():
    model = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))
    plan = ti.presets.get("torch") + [ti.Rule(path="2.*", init=ti.Zeros())]
    manifest = ti.apply(model, plan, seed=0)
    x = batch(64, WIDTH)
    planned = inspect(model, x, manifest=manifest)
    assert planned.layers[-1].zero_by_plan
    assert planned.activation_ratio() == pytest.approx(
        planned.layers[1].std / planned.layers[0].std)
    assert "vanishing_activations" not in {w.kind for w in planned.warnings}
    by_default = inspect(model, x)  # the manifest ti.apply left on the model
    assert by_default.layers[-1].zero_by_plan
    unplanned = inspect(model, x, manifest=ti.Plan([], on_unmatched="keep").explain(model))
    assert {"vanishing_activations", "dead"} <= {w.kind for w in unplanned.warnings}


def test_zero_by_plan_survives_json_and_old_reports_load():
    model = Block()
    report = inspect(model, batch(64, WIDTH), manifest=ti.apply(model, ZERO_LAST_NORM))
    assert Report.from_json(report.to_json()) == report
    data = json.loads(report.to_json())
    for record in data["layers"]:
        del record["zero_by_plan"], record["feeds_zero_by_plan"]  # written before they existed
    old = Report.from_json(json.dumps(data))
    assert not any(s.zero_by_plan for s in old.layers)
    assert "dead" in {w.kind for w in old.warnings}


# -- torchvision ResNet ---------------------------------------------------------------------------
@pytest.mark.skipif(not importable("torchvision"), reason="torchvision does not import")
def test_torchvision_resnet18_with_the_resnet_preset_has_no_warnings():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    manifest = ti.apply(model, ti.presets.get("resnet"), seed=0)
    report = ti.inspect(model, batch(8, 3, 64, 64), manifest=manifest)
    assert report.warnings == (), report.table()
    zero = [s.layer for s in report.layers if s.zero_by_plan]
    assert zero == [f"layer{i}.{j}.bn2" for i in range(1, 5) for j in range(2)]
    # Downsampling blocks: relu(bn2 + downsample) = relu(0 + N(0, 1)), std sqrt(1/2 - 1/2pi).
    relu_std = math.sqrt(0.5 - 1 / (2 * math.pi))
    for i in (2, 3, 4):
        out = next(s for s in report.layers if s.layer == f"layer{i}.0.relu#2")
        assert out.predicted_std == pytest.approx(relu_std, rel=1e-3)
        assert out.std == pytest.approx(relu_std, rel=0.05)
    predicted = [s for s in report.layers if s.predicted_std]
    assert len(predicted) > 40
    assert all(0.5 <= s.std / s.predicted_std <= 2 for s in predicted)
