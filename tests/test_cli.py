"""Tests of the ``torchinit`` command line.

The entry point runs in a subprocess (``python -m torchinit._cli``) for what depends on the
process: exit codes, help, tracebacks, the full runs. The other tests call
``torchinit._cli.main`` in this process, which is the same code without the ~1.5 s start of a
Python process with torch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import torchinit as ti
from torchinit._cli import main
from torchinit._experiments import DEFAULT_SCHEMES, build_model

from .thirdparty import importable

ROOT = Path(__file__).parents[1]
MNIST_DIR = Path(__file__).parents[2] / "shared" / "data" / "mnist"
COMMANDS = ("compare", "catalog", "presets", "explain", "inspect", "bench")


def run(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m torchinit._cli ARGS`` with this checkout's sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "torchinit._cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def invoke(*args: str) -> subprocess.CompletedProcess:
    """``torchinit._cli.main(args)`` in this process, with its exit code and output."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("torchinit"), result.stderr
    assert "error:" in lines[-1]
    for needle in needles:
        assert needle in result.stderr


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "mymodels.py"
    path.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU())
                self.head = nn.Linear(32, 10)

            def forward(self, x):
                return self.head(self.body(x))

        def build():
            return Net()

        instance = Net()
        def wrong_output():
            return nn.Sequential(nn.Flatten(), nn.Linear(784, 3), nn.Unflatten(1, (3, 1)))

        not_a_model = 3

        def broken():
            raise RuntimeError("cannot build")
    """))
    return path


# -- help, version, exit codes ------------------------------------------------------------------
def test_main_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "examples:" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command):
    result = invoke(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and f"torchinit {command}" in result.stdout


def test_version_and_no_command():
    assert run("--version").stdout.strip() == f"torchinit {ti.__version__}"
    result = run()
    assert result.returncode == 2 and "COMMAND" in result.stderr


def test_usage_errors_exit_2():
    result = run("compare", "--seeds", "0")
    assert result.returncode == 2 and "--seeds: expected an integer >= 1" in result.stderr
    assert invoke("nonsense").returncode == 2
    assert invoke("compare", "--experiment", "width").returncode == 2
    both = invoke("explain", "mlp", "--preset", "torch", "--plan", "x.yaml")
    assert both.returncode == 2 and "not allowed with" in both.stderr


# -- catalog and presets ------------------------------------------------------------------------
def test_catalog_json_lists_every_initializer():
    result = invoke("catalog", "--json")
    assert result.returncode == 0
    names = {r["name"] for r in json.loads(result.stdout)}
    assert names == set(ti.initializers.names())


def test_presets_list_describe_and_unknown():
    listing = invoke("presets")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == ti.presets.names()
    records = json.loads(invoke("presets", "--json").stdout)
    assert {r["name"] for r in records} == set(ti.presets.names())
    gpt2 = invoke("presets", "gpt2")
    assert gpt2.returncode == 0 and gpt2.stdout.strip() == ti.presets.describe("gpt2")
    assert_one_line_error(invoke("presets", "gtp2"), 1, "Did you mean 'gpt2'")


# -- explain ------------------------------------------------------------------------------------
def test_explain_builtin_model_table_json_and_digest():
    table = invoke("explain", "mlp", "--preset", "keras")
    assert table.returncode == 0
    assert "fc1.weight" in table.stdout and "xavier_uniform" in table.stdout
    data = json.loads(invoke("explain", "mlp", "--preset", "keras", "--json").stdout)
    digest = invoke("explain", "mlp", "--preset", "keras", "--digest").stdout.strip()
    manifest = ti.presets.get("keras").explain(build_model("mlp"))
    assert data["digest"] == digest == manifest.digest()
    assert [r["path"] for r in data["records"]] == manifest.paths()
    assert invoke("explain", "mlp", "--digest", "--seed", "1").stdout.strip() != \
        invoke("explain", "mlp", "--digest").stdout.strip()


def test_explain_module_and_file_models(model_file, tmp_path):
    module = invoke("explain", "torchinit._experiments.models:convnet", "--digest")
    assert module.returncode == 0 and len(module.stdout.strip()) == 64
    for spec in ("build", "Net", "instance"):
        result = invoke("explain", f"{model_file}:{spec}", "--preset", "general-rule")
        assert result.returncode == 0, result.stderr
        assert "head.weight" in result.stdout and "general_rule" in result.stdout
    plan = tmp_path / "plan.yaml"
    ti.Plan([ti.Rule(role="weight", init="orthogonal"), ti.Rule(role="bias", init="zeros")]
            ).to_file(str(plan))
    with_plan = invoke("explain", f"{model_file}:build", "--plan", str(plan))
    assert with_plan.returncode == 0 and "orthogonal" in with_plan.stdout


def test_explain_preset_options(model_file):
    missing = invoke("explain", f"{model_file}:build", "--preset", "gpt2")
    assert_one_line_error(missing, 1, "n_layers")
    ok = invoke("explain", f"{model_file}:build", "--preset", "gpt2", "-o", "n_layers=2", "-o",
             "residual_paths=head.weight")
    assert ok.returncode == 0, ok.stderr
    assert_one_line_error(invoke("explain", "mlp", "-o", "std=0.1"), 2, "--preset")


@pytest.mark.parametrize("spec, code, needle", [
    ("nosuch", 1, "unknown model 'nosuch'"),
    ("mpl", 1, "Did you mean 'mlp'"),
    ("missing_file.py:build", 1, "does not exist"),
    ("no_such_module_xyz:build", 1, "cannot import module 'no_such_module_xyz'"),
    ("{file}:biuld", 1, "Did you mean 'build'"),
    ("{file}:not_a_model", 1, "is a int"),
    ("{file}:broken", 1, "RuntimeError: cannot build"),
])
def test_model_spec_errors(model_file, spec, code, needle):
    assert_one_line_error(invoke("explain", spec.format(file=model_file)), code, needle)


def test_errors_are_one_line_and_debug_shows_the_traceback():
    assert_one_line_error(run("explain", "nosuch"), 1, "unknown model 'nosuch'")
    result = run("--debug", "explain", "nosuch")
    assert result.returncode != 0 and "Traceback" in result.stderr
    after = run("explain", "nosuch", "--debug")
    assert "Traceback" in after.stderr


def test_plan_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"init": "kaiming_nromal"}]}')
    assert_one_line_error(invoke("explain", "mlp", "--plan", str(bad)), 1, "kaiming_normal")
    assert_one_line_error(invoke("explain", "mlp", "--plan", str(tmp_path / "none.yaml")), 1)


# -- inspect ------------------------------------------------------------------------------------
def test_inspect_builtin_model(tmp_path):
    plot = tmp_path / "report.png"
    result = invoke("inspect", "deep-relu", "--preset", "torch", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert "fc30" in result.stdout and "warning" in result.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(invoke("inspect", "mlp", "--preset", "general-rule", "--json").stdout)
    assert [r["layer"] for r in data["layers"]][:2] == ["flatten", "fc1"]


def test_inspect_file_model_needs_an_input_shape(model_file):
    assert_one_line_error(invoke("inspect", f"{model_file}:build"), 2, "--input-shape")
    ok = invoke("inspect", f"{model_file}:build", "--input-shape", "32,784", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["layers"][0]["shape"][0] == 32
    assert_one_line_error(invoke("inspect", f"{model_file}:build", "--input-shape", "32,a"), 2,
                          "--input-shape '32,a'")


@pytest.fixture
def language_model_file(tmp_path: Path) -> Path:
    path = tmp_path / "lm.py"
    path.write_text(textwrap.dedent("""
        from torch import nn

        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(50, 16)
                self.fc = nn.Linear(16, 16)
                self.norm = nn.LayerNorm(16)
                self.head = nn.Linear(16, 50)

            def forward(self, ids):
                x = self.embed(ids)
                return self.head(self.norm(x + self.fc(x)))

        def build():
            return LM()
    """))
    return path


def test_inspect_feeds_token_ids(language_model_file):
    spec = f"{language_model_file}:build"
    result = invoke("inspect", spec, "--input-ids", "4,8", "--preset", "torch", "--json")
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)["layers"]
    assert [(r["layer"], r["shape"]) for r in layers] == [
        ("embed", [4, 8, 16]), ("fc", [4, 8, 16]), ("norm", [4, 8, 16]), ("head", [4, 8, 50])]
    assert all(r["predicted_std"] is not None for r in layers)
    assert invoke("inspect", spec, "--input-ids", "4,8", "--vocab", "50").returncode == 0
    # Ids up to 59 reach the 50-row table: the forward fails there, naming the module.
    assert_one_line_error(invoke("inspect", spec, "--input-ids", "4,8", "--vocab", "60"), 1,
                          "'embed' (Embedding)", "int64")


def test_inspect_token_id_usage_errors(language_model_file, model_file):
    spec = f"{language_model_file}:build"
    assert_one_line_error(invoke("inspect", spec, "--input-ids", "4"), 2, "--input-ids '4'")
    assert_one_line_error(invoke("inspect", spec, "--input-ids", "4,x"), 2, "e.g. --input-ids")
    assert_one_line_error(invoke("inspect", spec, "--vocab", "9"), 2, "give --input-ids")
    assert_one_line_error(invoke("inspect", spec, "--input-ids", "4,8", "--vocab", "0"), 2,
                          "--vocab 0")
    both = invoke("inspect", spec, "--input-ids", "4,8", "--input-shape", "4,8")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    assert_one_line_error(invoke("inspect", f"{model_file}:build", "--input-ids", "4,8"), 2,
                          "--vocab is needed")


@pytest.mark.skipif(not importable("transformers"), reason="transformers does not import")
def test_inspect_a_transformers_language_model(tmp_path):
    path = tmp_path / "tiny_gpt.py"
    path.write_text(textwrap.dedent("""
        import transformers

        def build():
            config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64,
                                             n_positions=16, bos_token_id=0, eos_token_id=0)
            return transformers.GPT2LMHeadModel(config)
    """))
    result = invoke("inspect", f"{path}:build", "--input-ids", "2,16", "--json")
    assert result.returncode == 0, result.stderr
    layers = {r["layer"]: r for r in json.loads(result.stdout)["layers"]}
    assert layers["transformer.wte"]["shape"] == [2, 16, 32]  # vocab from get_input_embeddings
    assert layers["lm_head"]["shape"] == [2, 16, 64]
    # The dropout after the sum of token and position embeddings: Var(wte) + Var(wpe).
    drop = layers["transformer.drop"]
    assert 0.5 <= drop["std"] / drop["predicted_std"] <= 2


# -- compare ------------------------------------------------------------------------------------
def test_compare_quick_run_writes_outputs(tmp_path):
    out = tmp_path / "out"
    result = run("compare", "--init", "zeros,kaiming", "--limit", "400", "--epochs", "1",
                 "--seeds", "2", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "all zeros" in result.stdout and "Kaiming" in result.stdout
    assert result.stderr == ""
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "loss_curves.png",
                                               "accuracy.png"}
    data = json.loads((out / "results.json").read_text())
    assert data["seeds"] == [0, 1]
    assert [s["name"] for s in data["panels"][0]["schemes"]] == ["zeros", "kaiming"]


def test_compare_json_is_reproducible(model_file):
    args = ("compare", "--init", "he,keras", "--model", f"{model_file}:build", "--limit", "300",
            "--epochs", "1", "--seeds", "1", "--seed", "7", "--json", "--quiet")
    first, second = invoke(*args), invoke(*args)
    assert first.returncode == 0, first.stderr
    runs = [json.loads(r.stdout)["panels"][0]["schemes"][1]["runs"] for r in (first, second)]
    assert runs[0][0]["seed"] == 7 and runs[0][0]["curve"] == runs[1][0]["curve"]


def test_compare_list_inits():
    result = invoke("compare", "--list-inits")
    assert result.returncode == 0
    assert "* kaiming" in result.stdout and "  lsuv" in result.stdout


@pytest.mark.parametrize("args, code, needle", [
    (("--init", "kaiminng"), 1, "Did you mean 'kaiming'"),
    (("--dataset", "mnist", "--data-dir", "/nonexistent/dir"), 1, "does not exist"),
    (("--dataset", "mnist"), 1, "--data-dir"),
    (("--data-dir", "somewhere"), 2, "--dataset mnist"),
    (("--init", "missing_plan.yaml"), 1, "plan file 'missing_plan.yaml' does not exist"),
    (("--lr", "-1"), 2, "expected a number > 0"),
])
def test_compare_errors(args, code, needle):
    assert_one_line_error(invoke("compare", *args), code, needle)


def test_compare_model_that_fails_in_training_is_one_line(model_file):
    result = invoke("compare", "--model", f"{model_file}:wrong_output", "--init", "kaiming",
                 "--limit", "200", "--epochs", "1", "--seeds", "1", "--quiet")
    assert_one_line_error(result, 1, "--debug shows the traceback")


def test_compare_mnist_files_in_a_directory(tmp_path):
    import gzip
    import struct

    import torch

    images = torch.randint(0, 256, (200, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    labels = torch.arange(200, dtype=torch.uint8) % 10
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        header = bytes([0, 0, 8, array.dim()]) + struct.pack(f">{array.dim()}I", *array.shape)
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(header + array.numpy().tobytes()))
    result = invoke("compare", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--init",
                 "kaiming", "--epochs", "1", "--seeds", "1", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dataset"]["name"] == "fashion-mnist" and data["dataset"]["examples"] == 200
    assert "Ankle boot" in data["panels"][0]["schemes"][0]["class_accuracy"]


# -- bench --------------------------------------------------------------------------------------
def test_bench_json():
    result = invoke("bench", "--n", "20000", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["cases"]) == 3 and all(c["ratio"] > 0 for c in data["cases"])
    assert "torch time / ours" in invoke("bench", "--n", "20000", "--repeats", "1").stdout


# -- the full runs (slow) -----------------------------------------------------------------------
@pytest.mark.slow
def test_default_compare_runs_offline_and_writes_its_outputs(tmp_path):
    result = run("compare", "--out", str(tmp_path), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"results.json", "results.md", "loss_curves.png", "accuracy.png"} <= {
        p.name for p in tmp_path.iterdir()}
    data = json.loads((tmp_path / "results.json").read_text())
    acc = {s["name"]: s["val_accuracy"]["mean"] for s in data["panels"][0]["schemes"]}
    assert list(acc) == list(DEFAULT_SCHEMES) and data["seeds"] == [0, 1, 2]
    assert acc["zeros"] <= 0.15 and acc["ones"] <= 0.15
    assert acc["uniform01"] < acc["centered-uniform"] < acc["general-rule"]


@pytest.mark.slow
def test_mnist_compare_reproduces_the_initialization_table():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    result = run("compare", "--dataset", "mnist", "--data-dir", str(MNIST_DIR), "--seeds", "3",
                 "--json", "--quiet", timeout=1800)  # ~45 s alone; room for a busy machine
    assert result.returncode == 0, result.stderr
    schemes = json.loads(result.stdout)["panels"][0]["schemes"]
    acc = {s["name"]: s["val_accuracy"]["mean"] for s in schemes}
    print(acc)
    assert acc["zeros"] <= 0.15 and acc["ones"] <= 0.15
    assert acc["uniform01"] < acc["centered-uniform"] < acc["general-rule"]
    for name in ("general-rule", "normal", "torch-default", "xavier", "kaiming"):
        assert acc[name] >= 0.95, name
