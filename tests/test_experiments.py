"""Tests of torchinit._experiments: datasets, models, schemes, training runs, statistics,
results and outputs; the slow tests reproduce the MNIST and depth findings."""

from __future__ import annotations

import gzip
import json
import math
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError, PlanError, UnknownNameError
from torchinit._experiments import (
    DEFAULT_SCHEMES,
    SCHEMES,
    TrainConfig,
    experiment_panels,
    load_dataset,
    parse_schemes,
    resolve_scheme,
    run_comparison,
    train_run,
    write_outputs,
)
from torchinit._experiments.bench import run_benchmark
from torchinit._experiments.datasets import FASHION_CLASSES, Dataset
from torchinit._experiments.idx import read_idx
from torchinit._experiments.models import MODELS, build_model, deep_mlp
from torchinit._experiments.protocol import learning_rate
from torchinit._experiments.stats import mean_interval, t_quantile
from torchinit._experiments.synthetic import render_digits

MNIST_DIR = Path(__file__).parents[2] / "shared" / "data" / "mnist"


def _idx_bytes(array: torch.Tensor) -> bytes:
    header = bytes([0, 0, 0x08, array.dim()]) + struct.pack(f">{array.dim()}I", *array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def _write_mnist(directory: Path, n: int, compress: bool = True) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.arange(n, dtype=torch.uint8) % 10
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = _idx_bytes(array)
        if compress:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return images, labels


# -- IDX files and datasets ---------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip_gzip_and_raw(tmp_path, compress):
    images, labels = _write_mnist(tmp_path, 30, compress)
    data = load_dataset("mnist", tmp_path)
    assert data.images.shape == (30, 1, 28, 28) and data.images.dtype == torch.float32
    assert torch.equal(data.images[:, 0], images.float() / 255)
    assert torch.equal(data.labels, labels.long())
    assert data.classes == tuple("0123456789")


def test_fashion_mnist_reads_the_same_file_names_with_class_names(tmp_path):
    _write_mnist(tmp_path, 20)
    data = load_dataset("fashion-mnist", tmp_path, limit=12)
    assert len(data) == 12 and data.classes == FASHION_CLASSES
    assert data.describe()["classes"][9] == "Ankle boot"


@pytest.mark.parametrize("header, message", [
    (b"\x01\x00\x08\x03", "not an IDX file"),
    (b"\x00\x00\x0d\x03", "data type 0x0d"),
    (b"\x00\x00\x08\x02", r"2 dimension\(s\), expected 3"),
])
def test_idx_header_errors_name_the_file(tmp_path, header, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(header + struct.pack(">3I", 1, 28, 28) + bytes(784))
    with pytest.raises(ConfigError, match=message) as err:
        read_idx(path, 3)
    assert str(path) in str(err.value)


def test_idx_size_mismatch_and_bad_gzip(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(9))
    with pytest.raises(ConfigError, match=r"shape \(10,\).*has 17 bytes"):
        read_idx(path, 1)
    bad = tmp_path / "y.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(ConfigError, match="not a valid gzip file"):
        read_idx(bad, 1)


def test_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="data_dir"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("mnist", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz or"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("embedded", limit=1)
    _write_mnist(tmp_path, 10)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx_bytes(torch.zeros(9, dtype=torch.uint8))))
    with pytest.raises(ConfigError, match="10 images but .* 9 labels"):
        load_dataset("mnist", tmp_path)


def test_embedded_dataset_is_deterministic_and_balanced():
    images, labels = render_digits(2000, seed=0)
    again, _ = render_digits(2000, seed=0)
    other, _ = render_digits(2000, seed=1)
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert images.shape == (2000, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    counts = torch.bincount(labels, minlength=10).double()
    # multinomial counts: each within 5 standard errors of n/10
    assert (counts - 200).abs().max() < 5 * math.sqrt(2000 * 0.1 * 0.9)


def test_split_is_disjoint_and_standardized():
    data = load_dataset("embedded", limit=500)
    split = data.split(0.2, seed=3)
    assert len(split.val_y) == 100 and len(split.train_y) == 400
    assert torch.equal(split.train_x, data.split(0.2, seed=3).train_x)
    std = split.standardized()
    assert abs(float(std.train_x.mean())) < 1e-5 and abs(float(std.train_x.std()) - 1) < 1e-5
    tiny = Dataset("t", data.images[:2], data.labels[:2], data.classes, "")
    with pytest.raises(ConfigError, match="empty part"):
        tiny.split(0.2, 0)


# -- models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_builtin_models_map_images_to_ten_logits(name):
    model = build_model(name)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_model_architectures():
    mlp = build_model("mlp")
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 256 + 256 + 256 * 128 + 128 + 1290
    assert [m.p for m in mlp.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    assert sum(isinstance(m, nn.Linear) for m in build_model("deep-relu").modules()) == 30
    tanh = build_model("deep-tanh")
    assert sum(isinstance(m, nn.Linear) for m in tanh.modules()) == 100
    assert sum(isinstance(m, nn.Tanh) for m in tanh.modules()) == 99
    with pytest.raises(UnknownNameError, match="Did you mean 'mlp'"):
        build_model("mpl")


# -- schemes ------------------------------------------------------------------------------------
EXPECTED_WEIGHT_STD = {  # std of fc1.weight (784 -> 256) from the formulas, by hand
    "zeros": 0.0, "ones": 0.0,
    "uniform01": 1 / math.sqrt(12), "centered-uniform": 1 / math.sqrt(12),
    "general-rule": 1 / math.sqrt(3 * 784), "normal": 1 / math.sqrt(784),
    "torch-default": 1 / math.sqrt(3 * 784), "xavier": math.sqrt(2 / (784 + 256)),
    "kaiming": math.sqrt(2 / 784), "orthogonal": 1 / math.sqrt(784),
}


@pytest.mark.parametrize("name", list(EXPECTED_WEIGHT_STD))
def test_scheme_plans(name):
    model = build_model("mlp")
    manifest = SCHEMES[name].initialize(model, seed=0)
    assert manifest["fc1.weight"].std == pytest.approx(EXPECTED_WEIGHT_STD[name], rel=1e-12)
    if name == "torch-default":
        assert manifest["fc1.bias"].std == pytest.approx(1 / math.sqrt(3 * 784))
    else:
        assert torch.count_nonzero(model.fc1.bias) == 0
    expected_mean = {"ones": 1.0, "uniform01": 0.5}.get(name, 0.0)
    n = model.fc1.weight.numel()
    se = max(EXPECTED_WEIGHT_STD[name], 1e-12) / math.sqrt(n)
    assert abs(model.fc1.weight.mean().item() - expected_mean) <= 5 * se


def test_torch_default_scheme_is_the_torch_preset():
    assert SCHEMES["torch-default"].plan == ti.presets.get("torch")


def test_lsuv_scheme_gives_unit_output_std():
    model = deep_mlp(6, 64, "relu")
    batch = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    manifest = SCHEMES["lsuv"].initialize(model, seed=0, batch=batch)
    layers = manifest.data["lsuv"]["layers"]
    assert len(layers) == 6 and all(abs(x["std"] - 1) <= 0.05 for x in layers)
    assert isinstance(manifest["fc1.weight"].init, ti.Orthogonal)
    with pytest.raises(ConfigError, match="needs a batch"):
        SCHEMES["lsuv"].initialize(model, seed=0)


def test_resolve_aliases_presets_and_plan_files(tmp_path):
    assert resolve_scheme("he") is SCHEMES["kaiming"]
    assert resolve_scheme("normal-1/sqrt(n)") is SCHEMES["normal"]
    assert resolve_scheme("keras").plan == ti.presets.get("keras")
    plan_file = tmp_path / "mine.json"
    ti.Plan([ti.Rule(role="weight", init=ti.Constant(0.5)),
             ti.Rule(role="bias", init="zeros")]).to_file(str(plan_file))
    scheme = resolve_scheme(str(plan_file))
    model = build_model("mlp")
    scheme.initialize(model, seed=0)
    assert torch.all(model.fc2.weight == 0.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_scheme(str(tmp_path / "missing.yaml"))
    with pytest.raises(UnknownNameError, match="Did you mean 'xavier'"):
        resolve_scheme("xaiver")
    with pytest.raises(ConfigError, match="named twice"):
        parse_schemes("xavier,glorot")
    with pytest.raises(ConfigError, match="no initialization"):
        parse_schemes(" , ")


def test_default_schemes_are_the_protocol_table():
    assert DEFAULT_SCHEMES == ("zeros", "ones", "uniform01", "centered-uniform", "general-rule",
                               "normal", "torch-default", "xavier", "kaiming")


# -- training runs ------------------------------------------------------------------------------
SMALL = TrainConfig(epochs=1, batch_size=50)


@pytest.fixture(scope="module")
def small_split():
    return load_dataset("embedded", limit=600).split(0.2, seed=0)


def test_train_run_is_deterministic(small_split):
    build = MODELS["mlp"].build
    first = train_run(build, SCHEMES["kaiming"], small_split, SMALL, seed=4)
    again = train_run(build, SCHEMES["kaiming"], small_split, SMALL, seed=4)
    other = train_run(build, SCHEMES["kaiming"], small_split, SMALL, seed=5)
    assert (first.val_accuracy, first.curve) == (again.val_accuracy, again.curve)
    assert first.curve != other.curve
    assert len(first.curve) == 480 // 50 + 1 and first.last_loss == first.curve[-1]


def test_train_run_stops_at_nan_and_counts_every_step(small_split, tmp_path):
    huge = tmp_path / "huge.json"
    ti.Plan([ti.Rule(role="weight", init=ti.Constant(1e30)),
             ti.Rule(role="bias", init="zeros")]).to_file(str(huge))
    counted = []
    run = train_run(MODELS["mlp"].build, resolve_scheme(str(huge)), small_split,
                    replace(SMALL, epochs=2), seed=0, on_step=counted.append)
    assert run.diverged_at == 1 and math.isnan(run.last_loss)
    assert sum(counted) == 2 * math.ceil(480 / 50)


def test_zeros_learn_only_the_output_bias(small_split):
    run = train_run(MODELS["mlp"].build, SCHEMES["zeros"], small_split, SMALL, seed=0)
    majority = torch.bincount(small_split.val_y).max() / len(small_split.val_y)
    assert run.val_accuracy <= float(majority) + 1e-9


def test_linear_schedule_reaches_zero_at_the_end(small_split):
    config = replace(SMALL, schedule="linear", lr=0.01)
    assert [learning_rate(config, t, 4) for t in range(5)] == [0.01, 0.0075, 0.005, 0.0025, 0.0]
    assert learning_rate(SMALL, 3, 4) == SMALL.lr
    build = MODELS["mlp"].build
    decayed = train_run(build, SCHEMES["kaiming"], small_split, config, seed=0)
    constant = train_run(build, SCHEMES["kaiming"], small_split, replace(config,
                         schedule="constant"), seed=0)
    assert decayed.curve[:2] == constant.curve[:2] and decayed.curve != constant.curve


def test_train_config_validation():
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="cosine")
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1.0)


# -- statistics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 10, 29, 30, 100])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_quantile_matches_scipy(dof, confidence):
    assert t_quantile(confidence, dof) == pytest.approx(stats.t.ppf(0.5 + confidence / 2, dof),
                                                        rel=1e-10)


def test_mean_interval_matches_scipy():
    values = [0.91, 0.93, 0.92, 0.95]
    interval = mean_interval(values)
    low, high = stats.t.interval(0.95, 3, loc=sum(values) / 4, scale=stats.sem(values))
    assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-10)
    single = mean_interval([0.5])
    assert single.half_width is None and single.low is None
    with pytest.raises(ConfigError):
        mean_interval([])


# -- comparisons, results and outputs -----------------------------------------------------------
@pytest.fixture(scope="module")
def comparison():
    panels = experiment_panels("protocol", schemes=["zeros", "kaiming"], epochs=1)
    return run_comparison("protocol", load_dataset("embedded", limit=500), panels, seeds=2,
                          seed=1, progress=False)


def test_comparison_results(comparison):
    data = json.loads(comparison.to_json())
    assert data["seeds"] == [1, 2] and data["dataset"]["examples"] == 500
    schemes = data["panels"][0]["schemes"]
    assert [s["name"] for s in schemes] == ["zeros", "kaiming"]
    kaiming = schemes[1]
    accuracies = [r["val_accuracy"] for r in kaiming["runs"]]
    interval = stats.t.interval(0.95, 1, loc=sum(accuracies) / 2, scale=stats.sem(accuracies))
    assert (kaiming["val_accuracy"]["ci_low"], kaiming["val_accuracy"]["ci_high"]) == \
        pytest.approx(interval, rel=1e-9)
    assert set(kaiming["class_accuracy"]) == set("0123456789")
    assert kaiming["plan"]["rules"][0]["init"]["name"] == "kaiming_normal"
    assert data["versions"]["torch"] == torch.__version__
    assert "| all zeros | zeros |" in comparison.markdown()
    assert "Kaiming" in comparison.table()


def test_write_outputs(comparison, tmp_path):
    outputs = write_outputs(comparison, tmp_path / "out")
    names = sorted(p.name for p in outputs.files)
    assert names == ["accuracy.png", "loss_curves.png", "results.json", "results.md"]
    assert all(p.stat().st_size > 0 for p in outputs.files) and outputs.notes == ()
    assert (tmp_path / "out" / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_write_outputs_without_matplotlib(comparison, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    outputs = write_outputs(comparison, tmp_path)
    assert sorted(p.name for p in outputs.files) == ["results.json", "results.md"]
    assert "matplotlib" in outputs.notes[0]


def _curve_panel(curves: dict[str, list[float]]):
    from torchinit._experiments.protocol import RunResult
    from torchinit._experiments.results import PanelResult, SchemeResult

    results = tuple(SchemeResult(SCHEMES[name], (RunResult(0, 0.5, curve[-1], tuple(curve),
                                                           (), 0.0),))
                    for name, curve in curves.items())
    return PanelResult(experiment_panels("protocol")[0], 100, 20, results, 0.0)


def test_loss_curves_zoom_in_on_the_schemes_that_train(tmp_path):
    from torchinit._experiments.plots import plot_loss_curves

    steps = range(100)
    xavier = [2.3 * math.exp(-t / 30) + 0.30 for t in steps]
    kaiming = [2.3 * math.exp(-t / 30) + 0.32 for t in steps]
    panel = _curve_panel({"ones": [2.3 * 1.05 ** t for t in steps],     # diverges
                          "zeros": [2.3] * 100,                           # does not move
                          "centered-uniform": [30.0 - 0.27 * t for t in steps],  # 3.0: too high
                          "kaiming": kaiming, "xavier": xavier})
    figure = plot_loss_curves(panel, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    main, zoom = figure.axes[:2]
    assert len(main.get_lines()) == 5
    # ordered by final loss, the mean of the last 10 steps
    assert [t.get_text() for t in zoom.get_legend().get_texts()] == \
        [f"Xavier ({sum(xavier[-10:]) / 10:#.3g})", f"Kaiming ({sum(kaiming[-10:]) / 10:#.3g})"]
    low, high = zoom.get_ylim()
    assert 0.25 < low < 0.35 and high < 2.3 and zoom.get_yscale() == "log"
    styles = {line.get_linestyle() for line in zoom.get_lines()}
    assert len(styles) == 2


def test_loss_curves_without_two_schemes_that_train_have_one_axis(tmp_path):
    from torchinit._experiments.plots import plot_loss_curves

    panel = _curve_panel({"zeros": [2.3] * 50,
                          "kaiming": [2.3 * math.exp(-t / 10) for t in range(50)]})
    assert len(plot_loss_curves(panel, tmp_path / "loss.png").axes) == 1


def test_panel_with_diagnostics(tmp_path):
    panels = [replace(p, model="deep-4", build=lambda: deep_mlp(4, 32, "relu"))
              for p in experiment_panels("depth-relu")]
    result = run_comparison("depth-relu", load_dataset("embedded", limit=300), panels, seeds=1,
                            progress=False)
    report = result.panels[0].results[0].diagnostics
    assert [s.module_type for s in report.layers].count("Linear") == 4
    assert "activation std last/first" in result.table()
    outputs = write_outputs(result, tmp_path)
    assert {"diagnostics.png", "diagnostics.txt"} <= {p.name for p in outputs.files}
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["panels"][0]["schemes"][1]["diagnostics"]["layers"]


def test_experiment_panels_overrides_and_errors():
    panels = experiment_panels("depth", schemes=["kaiming"], lr=0.1, epochs=None)
    assert [p.name for p in panels] == ["depth-relu", "depth-tanh", "depth-lsuv"]
    assert all(p.schemes == ("kaiming",) and p.config.lr == 0.1 and p.config.epochs == 1
               for p in panels)
    with pytest.raises(UnknownNameError, match="Did you mean 'depth'"):
        experiment_panels("dept")
    with pytest.raises(ConfigError, match="seeds"):
        run_comparison("protocol", load_dataset("embedded", limit=100),
                       experiment_panels("protocol"), seeds=0)


def test_unknown_scheme_fails_before_training():
    panels = experiment_panels("protocol", schemes=["kaiming", "nope"])
    with pytest.raises(UnknownNameError):
        run_comparison("protocol", load_dataset("embedded", limit=100), panels, seeds=1)


def test_plan_that_cannot_initialize_the_model_is_a_plan_error(tmp_path):
    only_conv = tmp_path / "conv.json"
    ti.Plan([ti.Rule(type="Conv2d", init="zeros")]).to_file(str(only_conv))
    panels = experiment_panels("protocol", schemes=[str(only_conv)], epochs=1)
    with pytest.raises(PlanError, match="match no rule"):
        run_comparison("protocol", load_dataset("embedded", limit=100), panels, seeds=1)


def test_benchmark_reports_each_distribution():
    cases = run_benchmark(n=20_000, repeats=1)
    assert [c.distribution.split("(")[0] for c in cases] == ["uniform", "normal",
                                                             "truncated normal"]
    assert all(c.torchinit_seconds > 0 and c.torch_seconds > 0 for c in cases)
    with pytest.raises(ConfigError, match="repeats"):
        run_benchmark(n=10, repeats=0)


# -- the published findings (slow) --------------------------------------------------------------
def _mnist():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    return load_dataset("mnist", MNIST_DIR)


@pytest.mark.slow
def test_depth_30_layer_relu_xavier_stalls_kaiming_trains():
    data = _mnist()
    result = run_comparison("depth-relu", data, experiment_panels("depth-relu"), seeds=3,
                            progress=False)
    acc = {r.scheme.name: r.accuracy().mean for r in result.panels[0].results}
    print(result.table())
    assert acc["xavier"] <= 0.15
    assert acc["kaiming"] >= 0.90
