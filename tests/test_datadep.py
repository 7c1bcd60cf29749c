"""LSUV and the output-bias prior: data-dependent steps that replay from the manifest."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit._datadep import lsuv, output_bias_prior
from torchinit._diagnostics import inspect
from torchinit.errors import ConfigError, PlanError

TOL = 0.05


def batch(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def convnet(depth: int = 20, channels: int = 16, inplace: bool = False) -> nn.Sequential:
    """``depth`` conv layers with ReLU, no normalization, then a linear classifier."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace)]
    layers += [nn.Flatten(), nn.Linear(channels * 8 * 8, 10)]
    return nn.Sequential(*layers)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def output_stds(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Std of each Linear/Conv call's output, measured independently of lsuv."""
    return {s.layer: s.std for s in inspect(model, x).layers
            if s.module_type in ("Conv2d", "Linear")}


@pytest.fixture(scope="module")
def conv_lsuv() -> tuple[nn.Module, ti.Manifest, torch.Tensor]:
    x = batch(64, 3, 8, 8)
    model = convnet()
    return model, lsuv(model, x, tol=TOL), x


def test_lsuv_brings_every_visited_layer_to_the_target_std(conv_lsuv):
    model, manifest, x = conv_lsuv
    stds = output_stds(model, x)
    assert len(stds) == 20
    for layer, std in stds.items():
        assert abs(std - 1.0) <= TOL, layer
    details = manifest.data["lsuv"]["layers"]
    assert [d["module"] for d in details] == [str(i) for i in range(0, 38, 2)] + ["39"]
    assert all(d["converged"] for d in details)


def test_lsuv_records_scales_and_replays_bitwise_without_data(conv_lsuv):
    model, manifest, _ = conv_lsuv
    for details in manifest.data["lsuv"]["layers"]:
        record = manifest[details["path"]]
        assert record.scale == details["scale"] != 1.0
        assert isinstance(record.init, ti.Orthogonal)
        assert record.notes[-1].startswith("lsuv: output std 1.0")
    assert manifest["0.bias"].init == ti.Zeros()
    fresh = convnet()
    ti.apply(fresh, manifest)
    assert_same_state(fresh, model)
    replayed = convnet()
    ti.apply(replayed, ti.Manifest.from_json(manifest.to_json()))
    assert_same_state(replayed, model)
    # Each weight is its record's unscaled sample times the Python-float scale.
    weight = model[2].weight
    base = ti.Orthogonal().sample(weight.shape, ti.Key(0, "2.weight"), ti.fans(model[2], "weight"))
    assert torch.equal(weight, base.mul_(manifest["2.weight"].scale))


class SharedInPlace(nn.Module):
    """A layer used twice, and in-place ReLUs after every layer."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(32, 64)
        self.shared = nn.Linear(64, 64)
        self.head = nn.Linear(64, 10)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.first(x))
        x = self.act(self.shared(x))
        return self.head(self.act(self.shared(x)))


def test_lsuv_handles_in_place_activations_and_shared_modules():
    x = batch(512, 32)
    model = SharedInPlace()
    manifest = lsuv(model, x)
    layers = {d["module"]: d for d in manifest.data["lsuv"]["layers"]}
    assert list(layers) == ["first", "shared", "head"]
    stds = output_stds(model, x)
    assert set(stds) == {"first", "shared#1", "shared#2", "head"}
    for name in ("first", "head"):  # measured before the in-place ReLU overwrote the output
        assert abs(stds[name] - 1.0) <= TOL
    pooled = math.sqrt((stds["shared#1"] ** 2 + stds["shared#2"] ** 2) / 2)
    assert abs(pooled - 1.0) <= 2 * TOL and layers["shared"]["converged"]
    assert layers["shared"]["iterations"] > 1  # the second call depends on the first
    fresh = SharedInPlace()
    ti.apply(fresh, manifest)
    assert_same_state(fresh, model)


def test_lsuv_restores_modes_and_requires_grad():
    model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5), nn.ReLU(), nn.Linear(16, 4))
    model.train()
    model[1].eval()
    model[3].bias.requires_grad_(False)
    lsuv(model, batch(128, 16))
    assert [m.training for m in model.modules()] == [True, True, False, True, True]
    assert model[0].weight.requires_grad and not model[3].bias.requires_grad


def test_lsuv_with_a_data_loader():
    x = batch(256, 16)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, 0]),
                                         batch_size=64)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))
    manifest = lsuv(model, loader, n_batches=2)
    assert manifest.data["lsuv"]["n_batches"] == 2
    pooled = inspect(model, x[:128])  # the two batches used, together
    for stats in pooled.layers:
        if stats.module_type == "Linear":
            assert abs(stats.std - 1.0) <= TOL


def test_lsuv_scales_the_input_weights_of_recurrent_layers():
    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True, bidirectional=True)
            self.gru = nn.GRU(32, 8, batch_first=True)
            self.cell = nn.RNNCell(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, _ = self.lstm(x)
            h, _ = self.gru(h)
            return self.cell(h[:, -1])

    x = batch(32, 6, 8)
    model = Recurrent()
    manifest = lsuv(model, x)
    paths = [d["path"] for d in manifest.data["lsuv"]["layers"]]
    assert paths == ["lstm.weight_ih_l0", "lstm.weight_ih_l0_reverse", "gru.weight_ih_l0",
                     "cell.weight_ih"]
    projection = nn.functional.linear(x, model.lstm.weight_ih_l0.detach())
    assert abs(float(projection.std(correction=0)) - 1.0) <= TOL
    assert manifest["lstm.weight_hh_l0"].kept and manifest["lstm.bias_ih_l0"].kept
    assert manifest["lstm.weight_ih_l0"].scale != 1.0
    fresh = Recurrent()
    fresh.load_state_dict(model.state_dict())  # kept parameters replay as they are
    with torch.no_grad():
        for name in paths:
            fresh.get_parameter(name).zero_()
    ti.apply(fresh, manifest)
    assert_same_state(fresh, model)


def test_lsuv_skips_weights_computed_by_a_parametrization():
    model = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(8, 8)), nn.Linear(8, 4))
    manifest = lsuv(model, batch(32, 8))
    assert [d["path"] for d in manifest.data["lsuv"]["layers"]] == ["1.weight"]


def test_lsuv_starts_from_a_plan_or_a_manifest():
    x = batch(128, 16)
    plan = ti.Plan([ti.Rule(role="weight", init=ti.KaimingNormal()),
                    ti.Rule(role="bias", init=ti.Zeros())])
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    manifest = lsuv(model, x, plan, orthogonal_first=False)
    assert isinstance(manifest["0.weight"].init, ti.KaimingNormal)
    again = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    started = ti.apply(again, plan)
    assert lsuv(again, x, started, orthogonal_first=False).digest() == manifest.digest()
    assert_same_state(again, model)


def test_lsuv_errors_are_clear():
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(ConfigError, match=r"module '2' \(Linear\)"):
        lsuv(model, batch(4, 16))
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 16)))
    with pytest.raises(ConfigError, match="no batch"):
        lsuv(model, empty)
    fitting = nn.Sequential(nn.Linear(16, 16))
    with pytest.raises(PlanError, match=r"\['0.weight'\]"):
        lsuv(fitting, batch(4, 16), orthogonal_first=False)
    with pytest.raises(ConfigError, match="tol"):
        lsuv(fitting, batch(4, 16), tol=0)
    with pytest.raises(ConfigError, match="max_iter"):
        lsuv(fitting, batch(4, 16), max_iter=0)
    with pytest.raises(ConfigError, match="once, as init="):
        lsuv(fitting, batch(4, 16), ti.apply(fitting, ti.Plan([ti.Rule(init="zeros")])),
             plan=ti.Plan([ti.Rule(init="zeros")]))
    with pytest.raises(ConfigError, match="init must be a Plan or a Manifest"):
        lsuv(fitting, batch(4, 16), "zeros")
    with pytest.raises(ConfigError, match="no layer it can scale"):
        lsuv(nn.Sequential(nn.ReLU()), batch(4, 16))


def test_lsuv_warns_when_a_layer_cannot_reach_the_target():
    model = nn.Sequential(nn.Linear(16, 16))
    with pytest.warns(UserWarning, match="0.weight output std 0"):
        manifest = lsuv(model, torch.zeros(8, 16))
    assert manifest.data["lsuv"]["layers"][0]["converged"] is False


# -- output-bias prior -------------------------------------------------------------------------
def classifier() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_classification_prior_makes_softmax_of_the_bias_the_class_frequencies():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20 + [3] * 100)
    model = classifier()
    manifest = output_bias_prior(model, labels)
    frequencies = torch.tensor([50, 30, 20, 100], dtype=torch.float64) / 200
    assert torch.allclose(torch.softmax(model[2].bias.double(), 0), frequencies, atol=1e-7)
    assert manifest["2.bias"].values == pytest.approx(frequencies.log().tolist())
    assert "output_bias_prior" in manifest["2.bias"].notes[-1]
    fresh = classifier()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        fresh[2].bias.zero_()
    loaded = ti.Manifest.from_json(manifest.to_json())
    assert loaded.digest() == manifest.digest() != ti.Plan([], on_unmatched="keep").explain(
        fresh).digest()
    ti.apply(fresh, loaded)
    assert_same_state(fresh, model)


def test_missing_classes_are_clipped_at_eps_and_renormalized():
    model = classifier()
    output_bias_prior(model, torch.tensor([0, 0, 1, 1]), eps=1e-6)
    expected = torch.tensor([0.5, 0.5, 1e-6, 1e-6], dtype=torch.float64)
    expected = (expected / expected.sum()).log().float()
    assert torch.equal(model[2].bias.detach(), expected)


def test_sigmoid_outputs_get_the_logit_of_the_positive_rate():
    binary = nn.Linear(8, 1)
    output_bias_prior(binary, torch.tensor([1] * 10 + [0] * 90))  # Lin et al.: pi = 0.1
    assert float(binary.bias.detach()) == pytest.approx(-math.log(0.9 / 0.1), rel=1e-6)
    multi = nn.Linear(8, 3)
    targets = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 0]])
    output_bias_prior(multi, targets)
    assert multi.bias.tolist() == pytest.approx([0.0, math.log(1e-8 / (1 - 1e-8)),
                                                 math.log(3.0)], rel=1e-6)


def test_regression_prior_is_the_target_mean_and_follows_forward_order():
    class Registered(nn.Module):  # the head is registered first, called last
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(16, 2)
            self.body = nn.Linear(8, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    model = Registered()
    targets = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    manifest = output_bias_prior(model, targets, task="regression", batch=batch(4, 8))
    assert model.head.bias.tolist() == pytest.approx([2.0, 1.0])
    assert [r.path for r in manifest if r.values is not None] == ["head.bias"]
    loader = [(batch(2, 8), targets[:1]), (batch(2, 8), targets[1:])]
    output_bias_prior(model, loader, task="regression", layer="head")
    assert model.head.bias.tolist() == pytest.approx([2.0, 1.0])


def test_output_bias_prior_errors_are_clear():
    model = classifier()
    with pytest.raises(ConfigError, match=r"ints in \[0, 4\)"):
        output_bias_prior(model, torch.tensor([0, 4]))
    with pytest.raises(ConfigError, match="task"):
        output_bias_prior(model, torch.tensor([0]), task="ranking")
    with pytest.raises(ConfigError, match="no bias"):
        output_bias_prior(nn.Sequential(nn.Linear(4, 2, bias=False)), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="task='regression'"):
        output_bias_prior(model, torch.tensor([0.5, 1.0]))
    with pytest.raises(ConfigError, match="not a module"):
        output_bias_prior(model, torch.tensor([0]), layer="missing")
    manifest = output_bias_prior(model, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(PlanError, match="not in the manifest"):
        ti.apply(nn.Sequential(model, nn.Linear(4, 2)), manifest)
