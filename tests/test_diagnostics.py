"""ti.inspect: measured vs predicted signal propagation, warnings, JSON, tables and plots."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit._diagnostics import Report, Thresholds, inspect
from torchinit.errors import ConfigError

WIDTH = 256


def mlp(depth: int, activation: type[nn.Module], width: int = WIDTH) -> nn.Sequential:
    """``depth`` Linear layers with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, width))
        if i < depth - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def initialized(model: nn.Module, weight: ti.Initializer) -> ti.Manifest:
    plan = ti.Plan([ti.Rule(role="weight", init=weight), ti.Rule(role="bias", init=ti.Zeros())])
    return ti.apply(model, plan, seed=3)


def batch(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def relu_reports() -> dict[str, Report]:
    """The 30-layer ReLU MLP of the docs, with Glorot and with He initialization."""
    x = batch(256, WIDTH)
    reports = {}
    for label, weight in (("xavier", ti.XavierNormal()),
                          ("kaiming", ti.KaimingNormal(nonlinearity="relu"))):
        model = mlp(30, nn.ReLU)
        reports[label] = inspect(model, x, manifest=initialized(model, weight), label=label)
    return reports


def _linear_stats(report: Report):
    return [s for s in report.layers if s.module_type == "Linear"]


def test_xavier_relu_mlp_warns_of_vanishing_activations(relu_reports):
    report = relu_reports["xavier"]
    ratio = report.activation_ratio()
    assert ratio < 1e-3
    # Glorot keeps Var fixed for linear units; each ReLU halves the second moment: 2^-14.5.
    assert ratio == pytest.approx(2 ** -14.5, rel=1.0)
    kinds = {w.kind for w in report.warnings}
    assert "vanishing_activations" in kinds
    assert "prediction" not in kinds


def test_kaiming_relu_mlp_keeps_the_scale_and_does_not_warn(relu_reports):
    report = relu_reports["kaiming"]
    assert report.warnings == ()
    assert 0.5 <= report.activation_ratio() <= 2
    for stats in _linear_stats(report):  # He: Var(y) = fan_in * (2 / fan_in) * E[x^2] = 2
        assert stats.predicted_std == pytest.approx(math.sqrt(2), rel=0.02)


@pytest.mark.parametrize("label", ["xavier", "kaiming"])
def test_predicted_and_measured_std_agree_within_2x_per_layer(relu_reports, label):
    report = relu_reports[label]
    assert len(report.layers) == 59
    for stats in report.layers:
        assert stats.predicted_std is not None, stats.layer
        assert 0.5 <= stats.std / stats.predicted_std <= 2, stats.layer
        assert stats.predicted_grad_std is not None, stats.layer
        assert 0.5 <= stats.grad_std / stats.predicted_grad_std <= 2, stats.layer


@pytest.fixture(scope="module")
def tanh_reports() -> dict[str, Report]:
    """A 50-layer tanh MLP with N(0, 1) weights and with orthogonal weights of gain 5/3."""
    x = batch(256, 128)
    reports = {}
    for label, weight in (("normal", ti.Normal(0.0, 1.0)),
                          ("orthogonal", ti.Orthogonal(ti.calculate_gain("tanh")))):
        model = mlp(50, nn.Tanh, width=128)
        initialized(model, weight)
        reports[label] = inspect(model, x, label=label)
    return reports


def test_tanh_mlp_saturates_with_unit_normal_weights_not_with_orthogonal(tanh_reports):
    saturated = [w for w in tanh_reports["normal"].warnings if w.kind == "saturated"]
    assert len(saturated) == 49  # every tanh: pre-activations have std ~ sqrt(128) * 0.8
    report = tanh_reports["orthogonal"]
    assert report.warnings == ()
    assert max(s.saturated_fraction for s in report.layers if s.module_type == "Tanh") < 0.2


def test_exploding_gradients_are_reported_even_when_they_overflow(tanh_reports):
    report = tanh_reports["normal"]
    assert any(math.isinf(s.grad_std) for s in report.layers)
    assert "exploding_gradients" in {w.kind for w in report.warnings}


def test_single_linear_prediction_is_the_variance_formula():
    layer = nn.Linear(300, 200)
    manifest = ti.apply(layer, ti.Plan([ti.Rule(name="weight", init=ti.Normal(0.0, 0.05)),
                                        ti.Rule(name="bias", init=ti.Uniform(-0.3, 0.3))]))
    x = batch(1000, 300) * 2.0 + 0.5
    report = inspect(layer, x, manifest=manifest)
    m2 = float((x.double() ** 2).mean())
    expected = math.sqrt(300 * 0.05**2 * m2 + 0.6**2 / 12)  # Var(U(-a, a)) = (2a)^2 / 12
    (stats,) = report.layers
    assert stats.predicted_std == pytest.approx(expected, rel=1e-9)
    assert report.prediction_source == "manifest"
    assert stats.std == pytest.approx(expected, rel=0.1)


def test_conv_prediction_counts_only_taps_inside_the_input():
    conv = nn.Conv2d(64, 64, 3, padding=1)
    manifest = ti.apply(conv, ti.Plan([ti.Rule(name="weight", init=ti.Normal(0.0, 0.05)),
                                       ti.Rule(name="bias", init=ti.Zeros())]))
    x = batch(64, 64, 8, 8)
    (stats,) = inspect(conv, x, manifest=manifest).layers
    # Per dimension, 6 of 8 outputs see 3 taps and the 2 border ones 2: 2.75 on average.
    expected = math.sqrt(64 * 2.75**2 * 0.05**2 * float((x.double() ** 2).mean()))
    assert stats.predicted_std == pytest.approx(expected, rel=1e-9)
    assert stats.std == pytest.approx(expected, rel=0.05)


def test_modules_without_a_model_get_no_prediction_and_neither_does_what_follows():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 9, 4))
    report = inspect(model, batch(16, 3, 8, 8))
    predicted = [s.predicted_std for s in report.layers]
    assert predicted[0] is not None
    assert predicted[1:] == [None, None, None]


def test_forward_order_repeated_modules_and_in_place_activations():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(16, 16)
            self.shared = nn.Linear(16, 16)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # registration order differs
            return self.head(self.act(self.shared(self.act(self.shared(x)))))

    model = Twice()
    x = batch(128, 16)
    report = inspect(model, x)
    assert [s.layer for s in report.layers] == ["shared#1", "act#1", "shared#2", "act#2", "head"]
    pre_activation = model.shared(x).detach()  # measured before the in-place ReLU ran
    first = report.layers[0]
    assert first.zero_fraction == 0
    assert first.mean == pytest.approx(float(pre_activation.mean()), rel=1e-4, abs=1e-6)
    assert first.std == pytest.approx(float(pre_activation.std(correction=0)), rel=1e-4)
    assert report.layers[1].zero_fraction > 0.3
    # The tensor hook registered before the in-place ReLU gets the pre-activation gradient.
    assert report.layers[0].grad_std < report.layers[1].grad_std


def test_a_parametrized_layer_is_one_row():
    model = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(8, 8)), nn.ReLU())
    report = inspect(model, batch(32, 8))
    assert [(s.layer, s.module_type) for s in report.layers] == [
        ("0", "ParametrizedLinear"), ("1", "ReLU")]
    assert report.layers[0].predicted_std is not None


def test_report_json_round_trip_and_records(relu_reports):
    report = relu_reports["xavier"]
    loaded = Report.from_json(report.to_json())
    assert loaded == report
    assert loaded.warnings == report.warnings
    records = report.to_records()
    assert len(records) == len(report.layers)
    assert records[0]["layer"] == "0" and records[0]["shape"] == [256, WIDTH]
    assert set(records[0]) >= {"mean", "std", "predicted_std", "grad_std", "dead_fraction"}


def test_non_finite_values_survive_json(tanh_reports):
    report = tanh_reports["normal"]
    assert Report.from_json(report.to_json()) == report


def test_warning_text_names_the_layer_and_the_threshold():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)
    report = inspect(model, batch(32, 8))
    (dead,) = [w for w in report.warnings if w.kind == "dead"]
    assert dead.layer == "1" and dead.value == 1.0 and dead.threshold == 0.5
    assert "1 (ReLU)" in dead.message and "50%" in dead.message
    strict = inspect(model, batch(32, 8), thresholds=Thresholds(dead=1.0))
    assert not [w for w in strict.warnings if w.kind == "dead"]
    table = report.table()
    assert "warning: 1 (ReLU): 100.0% of units are dead" in table


def test_depth_warning_states_the_ratio_and_threshold(relu_reports):
    (vanishing,) = [w for w in relu_reports["xavier"].warnings
                    if w.kind == "vanishing_activations"]
    assert vanishing.threshold == pytest.approx(1e-3)
    assert "below 0.001" in vanishing.message


def test_thresholds_are_validated():
    with pytest.raises(ConfigError, match="prediction"):
        Thresholds(prediction=0.5)
    with pytest.raises(ConfigError, match="dead"):
        Thresholds(dead=-1)


def test_plots_png_and_svg_with_overlay(relu_reports, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    xavier, kaiming = relu_reports["xavier"], relu_reports["kaiming"]
    png, svg = tmp_path / "overlay.png", tmp_path / "overlay.svg"
    xavier.plot(str(png), kaiming, title="30-layer ReLU MLP")
    xavier.plot(str(svg), kaiming)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for label in ("xavier: measured", "kaiming: measured", "xavier: predicted"):
        assert label in text


def test_plot_only_keeps_the_named_module_types(relu_reports, tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    plotted = []
    original = Axes.plot

    def record(self, x, *args, **kwargs):
        plotted.append(list(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", record)
    relu_reports["kaiming"].plot(str(tmp_path / "linear.png"), only=["Linear"])
    assert plotted and all(x == list(range(0, 59, 2)) for x in plotted)


def test_plot_rejects_other_formats(relu_reports, tmp_path):
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        relu_reports["xavier"].plot(str(tmp_path / "figure.jpg"))


def test_plot_without_matplotlib_names_the_extra(relu_reports, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"torchinit\[plot\]"):
        relu_reports["xavier"].plot(str(tmp_path / "figure.png"))


def _synthetic_report(stds, grads, label="r", layer="block.{}.proj") -> Report:
    from torchinit._diagnostics import LayerStats

    return Report(tuple(
        LayerStats(index=i, layer=layer.format(i), module_type="Linear", shape=(4, 8), mean=0.0,
                   std=std, abs_max=0.0, zero_fraction=0.0, dead_fraction=0.0,
                   saturated_fraction=None, grad_std=grad, predicted_std=std,
                   predicted_grad_std=grad) for i, (std, grad) in enumerate(zip(stds, grads))),
        label=label)


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_plot_draws_zeros_on_symlog_and_marks_infinite_values(tmp_path):
    from torchinit._diagnostics.plot import plot_reports

    inf = math.inf
    report = _synthetic_report([1.0, 0.5, 0.0, 0.0, 0.0, 1e-3], [inf, inf, 1.0, 0.5, 0.2, 1.0])
    act, grad = plot_reports([report], tmp_path / "special.png").axes
    assert act.get_yscale() == "symlog" and grad.get_yscale() == "log"
    assert act.yaxis.get_transform().linthresh == pytest.approx(1e-3)
    assert act.get_ylim()[0] < 0                              # the zeros clear of the edge
    assert {"r: measured: 3 zeros", "r: predicted: 3 zeros"} <= set(_legend(act))
    zeros = [line for line in act.get_lines() if line.get_label() == "r: measured: 3 zeros"]
    assert list(zeros[0].get_xdata()) == [2, 3, 4] and set(zeros[0].get_ydata()) == {0.0}
    assert "r: measured: 2 infinite (top edge)" in _legend(grad)
    assert (tmp_path / "special.png").stat().st_size > 0


def test_plot_without_zeros_keeps_a_log_axis_and_the_legend_unmarked(relu_reports, tmp_path):
    from torchinit._diagnostics.plot import plot_reports

    figure = plot_reports([relu_reports["kaiming"]], tmp_path / "plain.png")
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "log"]
    assert _legend(figure.axes[0]) == ["kaiming: measured", "kaiming: predicted"]
    assert figure.axes[1].get_legend() is None


def test_plot_draws_the_predicted_line_dashed_darker_and_on_top(relu_reports, tmp_path):
    from matplotlib.colors import to_rgb

    from torchinit._diagnostics.plot import plot_reports

    figure = plot_reports(list(relu_reports.values()), tmp_path / "lines.png")
    for ax in figure.axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        for label in relu_reports:
            measured, predicted = lines[f"{label}: measured"], lines[f"{label}: predicted"]
            assert predicted.get_linestyle() == "--" and measured.get_linestyle() == "-"
            assert predicted.get_zorder() > measured.get_zorder()
            assert sum(to_rgb(predicted.get_color())) < sum(to_rgb(measured.get_color())) - 0.3


def test_plot_names_the_layers_on_the_x_axis(relu_reports, tmp_path):
    from torchinit._diagnostics.plot import LABEL_CHARS, MAX_LABELS, _short, plot_reports

    report = relu_reports["xavier"]
    for ax in plot_reports([report], tmp_path / "names.png").axes:
        labels = ax.get_xticklabels()
        assert 2 <= len(labels) <= MAX_LABELS
        assert {t.get_text() for t in labels} <= {s.layer for s in report.layers}
        assert labels[0].get_text() == "0" and labels[-1].get_text() == report.layers[-1].layer
        assert labels[0].get_rotation() == 45
        ticks = {*ax.get_xticks(), *ax.get_xticks(minor=True)}    # a minor tick at every call
        assert ticks == {s.index for s in report.layers}
    long_names = _synthetic_report([1.0] * 40, [1.0] * 40,
                                   layer="encoder.layers.{}.self_attention.out_proj")
    figure = plot_reports([long_names], tmp_path / "long.png")
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    # every 3rd of 40, under the common prefix, the block index kept
    assert labels[:3] == ["0…out_proj", "3…out_proj", "6…out_proj"] and len(labels) == 14
    assert all(len(t) <= LABEL_CHARS for t in labels)
    assert _short(["x" * 30]) == "x" * (LABEL_CHARS - 1) + "…"
    assert figure.axes[0].get_xlabel() == "layer in encoder.layers (module path, forward order)"


def test_data_forms_give_the_same_report():
    model = mlp(3, nn.ReLU, width=16)
    x, y = batch(64, 16), torch.zeros(64, dtype=torch.long)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    reference = inspect(model, x)
    assert inspect(model, (x, y)) == reference
    assert inspect(model, loader) == reference


def test_loss_fn_gets_the_target():
    model = nn.Linear(16, 5)
    x, y = batch(64, 16), torch.arange(64) % 5
    report = inspect(model, (x, y), loss_fn=nn.functional.cross_entropy)
    logits = model(x).detach()
    expected = (torch.softmax(logits, 1) - nn.functional.one_hot(y, 5)) / 64
    assert report.layers[0].grad_std == pytest.approx(float(expected.std(correction=0)),
                                                      rel=1e-4)
    with pytest.raises(ConfigError, match="scalar"):
        inspect(model, (x, y), loss_fn=lambda out, target: out)


def test_inspect_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = inspect(model, batch(32, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training
    assert all(p.grad_std is not None for p in report.params)
    # Batch norm in train mode normalizes: unit std whatever the input scale.
    assert report.layers[1].predicted_std == pytest.approx(1.0)


def test_batch_that_does_not_fit_names_the_module():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(ConfigError, match=r"module '2' \(Linear\).*shape \(4, 8\)"):
        inspect(model, batch(4, 8))


def test_empty_loader_and_bad_batches_are_errors():
    model = nn.Linear(4, 4)
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 4)))
    with pytest.raises(ConfigError, match="no batch"):
        inspect(model, empty)
    with pytest.raises(ConfigError, match="a batch must be"):
        inspect(model, iter([{"x": torch.zeros(2, 4)}]))
    with pytest.raises(ConfigError, match="the data must be"):
        inspect(model, 3.0)
