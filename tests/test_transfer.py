"""Tests of the μTransfer experiment (torchinit._experiments.transfer, ``torchinit compare
--experiment mup``): learning-rate grids, per-group learning rates in training runs, the grid
runner and its results on tiny widths, the command line; the slow test reproduces μTransfer on
MNIST (Yang et al. 2022, "Tensor Programs V", Figures 1 and 3)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from torchinit.errors import ConfigError
from torchinit._experiments import SCHEMES, TrainConfig, load_dataset, train_run
from torchinit._experiments import protocol
from torchinit._experiments.stats import final_loss
from torchinit._experiments.transfer import (
    DEFAULT_LRS,
    DEFAULT_WIDTHS,
    lr_label,
    parse_lrs,
    run_transfer,
    transfer_model,
    transfer_schemes,
    write_transfer,
)

from .test_cli import invoke

MNIST_DIR = Path(__file__).parents[2] / "shared" / "data" / "mnist"
TINY = TrainConfig(epochs=1, batch_size=64, curve_steps=None, standardize=True)


@pytest.fixture(scope="module")
def tiny_data():
    return load_dataset("embedded", limit=400)


@pytest.fixture(scope="module")
def tiny_grid(tiny_data):
    return run_transfer(tiny_data, widths=(16, 8), lrs=(2.0 ** -6, 2.0 ** -8, 2.0 ** -7),
                        config=TINY, seeds=2, base_width=8)


# -- learning-rate grids ------------------------------------------------------------------------
def test_parse_lrs_reads_numbers_powers_and_ranges_in_increasing_order():
    assert parse_lrs("2^-4..2^-6") == (2.0 ** -6, 2.0 ** -5, 2.0 ** -4)
    assert parse_lrs("1e-3, 2^-12,") == (2.0 ** -12, 1e-3)
    assert parse_lrs("2^-14..2^-4") == DEFAULT_LRS and len(DEFAULT_LRS) == 11
    assert [lr_label(x) for x in parse_lrs("2^-3,0.3")] == ["2^-3", "0.3"]


@pytest.mark.parametrize("text, needle", [
    ("", "no learning rate"), ("fast", "'fast'"), ("0", "> 0"), ("-1e-3", "> 0"),
    ("nan", "> 0"), ("2^-3,0.125", "given twice"), ("2^-3..2^x", "2^-3..2^x"),
])
def test_parse_lrs_rejects_bad_lists(text, needle):
    with pytest.raises(ConfigError, match=needle.replace("^", r"\^").replace(".", r"\.")):
        parse_lrs(text)


# -- schemes and per-group learning rates -------------------------------------------------------
def test_mup_scheme_gives_table_3_adam_learning_rates_and_sp_one_rate():
    schemes = transfer_schemes(base_width=128)
    model = transfer_model(512)
    groups = schemes["mup"].optimizer_groups(model, 0.01)
    lrs = {name: group["lr"] for group in groups for name in group["names"]}
    assert lrs == {"fc1.weight": 0.01, "fc1.bias": 0.01, "fc2.weight": 0.0025,
                   "fc2.bias": 0.01, "fc3.weight": 0.0025, "fc3.bias": 0.01}
    assert schemes["sp"] is SCHEMES["torch-default"] and not schemes["sp"].optimizer_scales
    (one,) = schemes["sp"].optimizer_groups(model, 0.01)
    assert one["lr"] == 0.01 and len(one["params"]) == 6


def test_sgd_mup_scheme_follows_table_3_sgd_column():
    groups = transfer_schemes(128, "sgd")["mup"].optimizer_groups(transfer_model(256), 0.1)
    lrs = {name: group["lr"] for group in groups for name in group["names"]}
    assert lrs["fc1.weight"] == pytest.approx(0.2) and lrs["fc2.weight"] == pytest.approx(0.1)
    assert lrs["fc3.weight"] == pytest.approx(0.05)


def test_schedule_scales_each_groups_own_learning_rate(monkeypatch, tiny_data):
    seen: list[list[float]] = []

    class Recording(torch.optim.Adam):
        def step(self, closure=None):  # type: ignore[no-untyped-def]
            seen.append([group["lr"] for group in self.param_groups])
            return super().step(closure)

    monkeypatch.setattr(protocol.torch.optim, "Adam", Recording)
    split = tiny_data.split(0.2, seed=0)
    config = replace(TINY, schedule="linear", lr=0.01)
    train_run(lambda: transfer_model(32), transfer_schemes(8)["mup"], split, config, seed=0)
    total = math.ceil(320 / 64)
    assert len(seen) == total
    for step, lrs in enumerate(seen):
        assert lrs == pytest.approx([0.01 * (1 - step / total), 0.0025 * (1 - step / total)])


def test_mup_at_base_width_trains_like_its_plan_with_one_learning_rate(tiny_data):
    split = tiny_data.split(0.2, seed=0)
    mup = transfer_schemes(16)["mup"]
    config = replace(TINY, lr=0.003)
    grouped = train_run(lambda: transfer_model(16), mup, split, config, seed=1)
    single = train_run(lambda: transfer_model(16), replace(mup, optimizer_scales=False), split,
                       config, seed=1)
    assert grouped.curve == single.curve


# -- the grid runner ----------------------------------------------------------------------------
def test_grid_runs_every_point_with_the_same_batches(tiny_grid):
    assert tiny_grid.widths == (8, 16) and tiny_grid.lrs == (2.0 ** -8, 2.0 ** -7, 2.0 ** -6)
    assert len(tiny_grid.points) == 2 * 2 * 3 and tiny_grid.seeds == (0, 1)
    steps = math.ceil(tiny_grid.n_train / 64)
    for point in tiny_grid.points:
        assert [r.seed for r in point.runs] == [0, 1]
        assert all(len(r.curve) == steps for r in point.runs)
        assert point.loss() == pytest.approx(sum(final_loss(r.curve) for r in point.runs) / 2)
    # at its base width μP draws other weights than SP, but μP's multipliers are all 1 there
    sp, mup = (tiny_grid.point(name, 8, 2.0 ** -7) for name in ("sp", "mup"))
    assert sp.runs[0].curve != mup.runs[0].curve


def test_best_learning_rates_shift_and_tables(tiny_grid):
    for name in ("sp", "mup"):
        best = tiny_grid.best(name)
        assert [b.width for b in best] == [8, 16]
        for b in best:
            losses = tiny_grid.losses(name, b.width)
            assert b.loss == min(losses) and tiny_grid.lrs[b.index] == b.lr
        shift = tiny_grid.shift(name)
        assert shift == max(b.index for b in best) - min(b.index for b in best)
        per_seed = [tiny_grid.best(name, seed) for seed in (0, 1)]
        assert all(len(b) == 2 for b in per_seed)
    text = tiny_grid.table()
    assert "SP best lr per seed" in text and "2^-7" in text and "grid step(s)" in text
    markdown = tiny_grid.markdown()
    assert markdown.startswith("# torchinit compare: mup") and "| width |" in markdown
    data = json.loads(tiny_grid.to_json())
    assert data["widths"] == [8, 16] and len(data["points"]) == 12
    assert data["schemes"]["mup"]["optimizer_scales"] is True
    assert data["best"]["mup"][0]["width"] == 8 and data["config"]["batch_size"] == 64


def test_write_transfer_writes_results_and_the_figure(tiny_grid, tmp_path):
    outputs = write_transfer(tiny_grid, tmp_path / "out")
    assert sorted(f.name for f in outputs.files) == ["mup_transfer.png", "results.json",
                                                     "results.md"]
    assert all(f.stat().st_size > 0 for f in outputs.files) and outputs.notes == ()


def test_a_diverged_grid_point_has_no_loss_and_is_never_best(tiny_data):
    grid = run_transfer(tiny_data, widths=(8,), lrs=(1e-3, 1e36), config=TINY, base_width=8)
    for name in ("sp", "mup"):
        (best,) = grid.best(name)
        assert best.lr == 1e-3
        assert not math.isfinite(grid.losses(name, 8)[1])
    assert json.loads(grid.to_json())["points"][1]["loss"] is None


@pytest.mark.parametrize("kwargs, needle", [
    ({"widths": (8, 8)}, "twice"), ({"widths": (0,)}, "int >= 1"), ({"widths": ()}, "non-empty"),
    ({"seeds": 0}, "seeds"), ({"lrs": ()}, "no learning rate"), ({"lrs": (0.1, -1.0)}, "> 0"),
    ({"base_width": 2.5}, "base width"),
])
def test_grid_rejects_bad_settings(tiny_data, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        run_transfer(tiny_data, **{"widths": (8,), "lrs": (1e-3,), "config": TINY, **kwargs})


def test_default_grid_is_the_papers_widths_a_factor_two_apart():
    assert DEFAULT_WIDTHS == (128, 256, 512, 1024, 2048)
    assert all(b / a == 2.0 for a, b in zip(DEFAULT_LRS, DEFAULT_LRS[1:]))


# -- command line -------------------------------------------------------------------------------
def test_cli_runs_the_mup_grid(tmp_path):
    result = invoke("compare", "--experiment", "mup", "--widths", "16,8", "--lrs",
                    "2^-8..2^-7", "--limit", "300", "--epochs", "1", "--batch-size", "64",
                    "--json", "--quiet", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["experiment"] == "mup" and data["widths"] == [8, 16]
    assert data["lrs"] == [2.0 ** -8, 2.0 ** -7] and data["dataset"]["examples"] == 300
    assert data["config"]["epochs"] == 1 and data["base_width"] == 128
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "results.md",
                                                    "mup_transfer.png"}


@pytest.mark.parametrize("args, needle", [
    (("--experiment", "mup", "--init", "xavier"), "--init"),
    (("--experiment", "mup", "--lr", "0.1"), "--lrs"),
    (("--widths", "8,16"), "--experiment mup"),
    (("--lrs", "2^-3"), "--experiment mup"),
])
def test_cli_refuses_options_of_the_other_experiments(args, needle):
    result = invoke("compare", *args)
    assert result.returncode == 2 and needle in result.stderr


@pytest.mark.parametrize("option, value", [("--widths", "8,x"), ("--widths", "0"),
                                           ("--lrs", "2^-3,fast")])
def test_cli_rejects_bad_grids_as_usage_errors(option, value):
    result = invoke("compare", "--experiment", "mup", option, value)
    assert result.returncode == 2 and option in result.stderr


# -- μTransfer on MNIST -------------------------------------------------------------------------
SLOW_WIDTHS = (128, 512, 2048)
SLOW_LRS = parse_lrs("2^-12..2^-6")
SLOW_LIMIT = 30_000
"""The reduced grid: 3 of the 5 widths, the 7 learning rates around the optima, the first
30,000 images (24,000 for training: one epoch is 188 steps of 128). Measured (seed 0): best
learning rates 2^-8, 2^-9, 2^-10 under SP and 2^-8, 2^-8, 2^-7 under μP; about 100 s on two
quiet cores."""
MUP_LOSS_NOISE = 0.01
"""How much μP's loss at the best learning rate may rise from one width to the next and still
count as not getting worse: about twice the standard deviation over seeds 0-2 (0.002-0.005)
of the width-to-width differences of the best loss in the full run (docs/experiments.md)."""


@pytest.mark.slow
def test_mnist_mup_transfers_the_best_learning_rate_across_widths_and_sp_does_not():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    data = load_dataset("mnist", MNIST_DIR, limit=SLOW_LIMIT)
    grid = run_transfer(data, SLOW_WIDTHS, SLOW_LRS)
    print(grid.table())
    assert grid.at_edge("mup") == []
    assert grid.shift("mup") <= 1
    assert grid.shift("sp") >= 2
    assert grid.largest_rise("mup") <= MUP_LOSS_NOISE
