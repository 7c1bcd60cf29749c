"""The coordinate check (Yang et al. 2022, "Tensor Programs V", appendix D.1) and its model
families: what it records, its results, its errors, the command, and (slow) the published
finding that μP keeps the logits' size flat in width where the standard parametrization (SP)
lets it grow."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchinit as ti
from torchinit._cli import main
from torchinit.errors import ConfigError, UnknownNameError
from torchinit._experiments import load_dataset
from torchinit.width import CoordCheck, coord_check, forward_requirements
from torchinit.width._coord import LOGITS
from torchinit.width.families import (
    HEAD_DIM,
    MAX_LEN,
    SelfAttention,
    mlp,
    mlp_batch,
    token_batch,
    transformer,
)

MNIST_DIR = Path(__file__).parents[2] / "shared" / "data" / "mnist"
MLP_LAYERS = ("input", "act1", "hidden", "act2", "readout", LOGITS)
WIDTHS = (8, 16, 32)


def sp(width: int) -> ti.Plan:
    return ti.presets.get("torch")


def mup_from(base: int, optimizer: str = "adam"):
    plan = ti.mup(lambda: mlp(base), optimizer=optimizer, delta=lambda: mlp(2 * base))
    return lambda width: plan


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(32, 784, generator=generator), torch.randint(0, 10, (32,),
                                                                    generator=generator)


@pytest.fixture(scope="module")
def sp_check(batch) -> CoordCheck:
    return coord_check(mlp, [32, 8, 16], sp, batch, steps=2, lr=1e-2, label="SP")


# -- families -----------------------------------------------------------------------------------
def test_mlp_family_and_its_batch():
    model = mlp(8)
    assert [n for n, _ in model.named_parameters()] == [
        "input.weight", "input.bias", "hidden.weight", "hidden.bias", "readout.weight",
        "readout.bias"]
    assert model.hidden.weight.shape == (8, 8) and model.readout.weight.shape == (10, 8)
    images, labels = torch.rand(50, 1, 28, 28), torch.arange(50) % 10
    x, y = mlp_batch(images, labels, batch_size=20, seed=3)
    assert x.shape == (20, 784) and y.shape == (20,) and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1.0, rel=1e-5)
    again, _ = mlp_batch(images, labels, batch_size=20, seed=3)
    assert torch.equal(x, again) and model(x).shape == (20, 10)
    with pytest.raises(ConfigError, match="width must be an int >= 1"):
        mlp(0)
    with pytest.raises(ConfigError, match="28, 28"):
        mlp_batch(torch.rand(5, 3, 3), torch.zeros(5), batch_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        mlp_batch(images, labels, batch_size=51)


def test_transformer_family_heads_scale_and_token_batch():
    model = transformer(48)
    attention = model.blocks[0].attn
    assert isinstance(attention, SelfAttention) and len(model.blocks) == 2
    assert attention.head_dim == HEAD_DIM and attention.n_heads == 3
    assert attention.scaling == 1 / HEAD_DIM
    assert transformer(48, attn_scale="sp").blocks[1].attn.scaling == HEAD_DIM ** -0.5
    ids, targets = token_batch(4, 10, seed=2)
    assert ids.shape == targets.shape == (4, 10)
    assert torch.equal(ids[:, 1:], targets[:, :-1])  # next-token targets
    assert torch.equal(ids, token_batch(4, 10, seed=2)[0])
    assert model(ids).shape == (4, 10, 256)
    with pytest.raises(ConfigError, match="multiple of 16"):
        transformer(40)
    with pytest.raises(ConfigError, match="attn_scale"):
        transformer(32, attn_scale="gpt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_blocks"):
        transformer(32, n_blocks=0)
    with pytest.raises(ConfigError, match=f"at most {MAX_LEN}"):
        token_batch(2, MAX_LEN + 1)


def test_mup_detector_warns_for_the_sp_attention_only():
    for scale, warns in (("sp", True), ("mup", False)):
        plan = ti.mup(lambda: transformer(16, attn_scale=scale))
        messages = forward_requirements(transformer(32, attn_scale=scale), plan)
        assert bool(messages) is warns
        if warns:
            assert "blocks.0.attn" in messages[0] and "1/sqrt(head_dim)" in messages[0]


# -- what is recorded ---------------------------------------------------------------------------
def test_records_every_leaf_and_the_logits_at_every_step(sp_check):
    assert sp_check.widths == WIDTHS and sp_check.steps == 2
    assert sp_check.layers == MLP_LAYERS
    assert set(sp_check.data) == {(layer, w, t) for layer in MLP_LAYERS for w in WIDTHS
                                  for t in range(3)}
    assert sp_check.values("readout", 1) == sp_check.values(LOGITS, 1)
    assert sp_check.optimizer == "adam" and sp_check.lr == 1e-2


def test_steps_are_forward_passes_after_t_updates(batch, sp_check):
    """Step t is the model after t AdamW updates over ti.param_groups, built, initialized and
    trained under a generator seeded with the seed."""
    x, y = batch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = mlp(16)
        manifest = ti.apply(model, sp(16), seed=0)
        optimizer = torch.optim.AdamW(ti.param_groups(model, plan=manifest, lr=1e-2), lr=1e-2)
        seen = []
        for step in range(3):
            with torch.no_grad():
                seen.append((model.act1(model.input(x)).abs().mean().item(),
                             model(x).abs().mean().item()))
            if step < 2:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
    for step, (act1, logits) in enumerate(seen):
        assert sp_check.data[("act1", 16, step)] == pytest.approx(act1, rel=1e-5)
        assert sp_check.data[(LOGITS, 16, step)] == pytest.approx(logits, rel=1e-5)


def test_check_is_reproducible_and_keeps_the_global_generator(batch, sp_check):
    state = torch.random.get_rng_state()
    again = coord_check(mlp, WIDTHS, sp, batch, steps=2, lr=1e-2, label="SP")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert again == sp_check
    other = coord_check(mlp, WIDTHS, sp, batch, steps=2, lr=1e-2, seed=1)
    assert other.data[("input", 8, 0)] != sp_check.data[("input", 8, 0)]


def test_mup_zero_readout_sgd_weight_decay_and_custom_loss(batch):
    calls = []

    def loss(output, targets):
        calls.append(output.shape)
        return F.mse_loss(output, F.one_hot(targets, 10).float())

    check = coord_check(mlp, WIDTHS, mup_from(4, "sgd"), batch, steps=1, lr=0.1,
                        optimizer="sgd", weight_decay=0.1, loss=loss)
    assert calls == [(32, 10)] * len(WIDTHS)  # one update per width
    assert check.values(LOGITS, 0) == (0.0, 0.0, 0.0)  # zero-initialized readout
    assert math.isnan(check.growth(LOGITS, 0))
    assert all(v > 0 for v in check.values(LOGITS, 1))


def test_mup_zero_readout_at_the_base_width_too(batch):
    check = coord_check(mlp, WIDTHS, mup_from(WIDTHS[0]), batch, steps=1, lr=1e-2)
    assert check.values(LOGITS, 0) == (0.0, 0.0, 0.0)


# -- results ------------------------------------------------------------------------------------
def test_growth_values_and_steps(sp_check):
    first, *_, last = sp_check.values(LOGITS)
    assert sp_check.growth(LOGITS) == last / first == sp_check.growth(LOGITS, 2)
    assert sp_check.values("hidden", -3) == sp_check.values("hidden", 0)
    manual = CoordCheck((1, 2), 1, ("a",), {("a", 1, 0): 0.0, ("a", 2, 0): 3.0,
                                            ("a", 1, 1): 2.0, ("a", 2, 1): 1.0}, "sgd", 0.1)
    assert manual.growth("a", 0) == math.inf and manual.growth("a") == 0.5
    with pytest.raises(UnknownNameError, match="Did you mean 'hidden'"):
        sp_check.growth("hiden")
    with pytest.raises(ConfigError, match=r"step must be an int in \[0, 2\]"):
        sp_check.values("hidden", 3)


def test_table_json_and_plot(sp_check, batch, tmp_path, monkeypatch):
    table = sp_check.table()
    assert table.splitlines()[0] == "SP: mean |x| (adam, lr 0.01, 2 steps)"
    assert "growth" in table.splitlines()[1] and len(table.splitlines()) == 3 + 3 * 6
    data = json.loads(sp_check.to_json())
    assert data["widths"] == list(WIDTHS) and len(data["values"][LOGITS]) == 3
    assert CoordCheck.from_json(sp_check.to_json()) == sp_check
    odd = CoordCheck((1, 2), 1, ("a",), {("a", 1, 0): math.inf, ("a", 2, 0): math.nan,
                                         ("a", 1, 1): 1.0, ("a", 2, 1): 1.0}, "adam", 0.1)
    assert json.loads(odd.to_json())["values"]["a"][0] == ["inf", "nan"]
    assert CoordCheck.from_json(odd.to_json()).values("a", 0)[0] == math.inf
    with pytest.raises(ConfigError, match="format"):
        CoordCheck.from_json('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a coordinate check"):
        CoordCheck.from_json("[1, 2")

    mup_check = coord_check(mlp, WIDTHS, mup_from(4), batch, steps=2, lr=1e-2, label="μP")
    sp_check.plot(tmp_path / "coord.png", mup_check)  # zeros at step 0 are left out
    assert (tmp_path / "coord.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="extension"):
        sp_check.plot(tmp_path / "coord.jpg")
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"torchinit\[plot\]"):
        sp_check.plot(tmp_path / "again.png")


# -- errors -------------------------------------------------------------------------------------
class Pair(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = nn.Linear(784, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer(x), x


@pytest.mark.parametrize("kwargs, needle", [
    ({"widths": []}, "non-empty list"),
    ({"widths": "8,16"}, "non-empty list"),
    ({"widths": [8, 0]}, "ints >= 1, got 0"),
    ({"widths": [8, True]}, "ints >= 1, got True"),
    ({"widths": [8, 8]}, "distinct"),
    ({"steps": 0}, "steps must be an int >= 1"),
    ({"steps": 1.5}, "steps must be an int >= 1"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"lr": math.nan}, "lr must be a finite number > 0"),
    ({"weight_decay": -1}, "weight_decay must be a finite number >= 0"),
    ({"factory": lambda w: "mlp"}, r"factory\(8\) returned str, not an nn.Module"),
    ({"plan_fn": lambda w: "torch"}, r"plan_fn\(8\) returned str, not a Plan"),
    ({"factory": Pair, "plan_fn": sp}, "must be a floating tensor of logits"),
    ({"batch": torch.zeros(2, 784)}, r"batch must be \(inputs, targets\)"),
    ({"factory": lambda w: nn.Sequential(OrderedDict(logits=nn.Linear(784, w))),
      "plan_fn": sp}, "leaf module named 'logits'"),
    ({"factory": lambda w: nn.Sequential(nn.Linear(784, 10), *[nn.ReLU()] * (w == 16)),
      "plan_fn": sp}, "the same modules at every width"),
])
def test_errors(batch, kwargs, needle):
    args = {"factory": mlp, "widths": [8, 16], "plan_fn": sp, "batch": batch, "steps": 1,
            **kwargs}
    with pytest.raises(ConfigError, match=needle):
        coord_check(args.pop("factory"), args.pop("widths"), args.pop("plan_fn"),
                    args.pop("batch"), **args)


# -- the command --------------------------------------------------------------------------------
def invoke(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_command_writes_tables_growth_json_and_plot(tmp_path):
    code, out, err = invoke("coordcheck", "--widths", "8,16", "--steps", "1", "--batch-size",
                            "32", "--out", str(tmp_path))
    assert code == 0, err
    assert "SP: mean |x|" in out and "μP: mean |x|" in out
    assert "growth from width 8 to 16 after 1 steps" in out
    growth = out.split("growth from width")[1].splitlines()
    assert growth[1].split() == ["coordinate", "SP", "μP"] and growth[-1].startswith(LOGITS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coordcheck.png", "mup.json",
                                                          "sp.json"]
    assert CoordCheck.from_json((tmp_path / "mup.json").read_text()).label == "μP"
    assert "wrote" in err


def test_command_transformer_and_one_parametrization():
    code, out, err = invoke("coordcheck", "--family", "transformer", "--widths", "16,32",
                            "--steps", "1", "--batch-size", "2", "--parametrization", "mup",
                            "--optimizer", "sgd")
    assert code == 0, err
    assert "μP: mean |x| (sgd, lr 0.1, 1 steps)" in out and "SP:" not in out
    assert "blocks.1.attn.out" in out


@pytest.mark.parametrize("args, code, needle", [
    (("--data-dir", "somewhere"), 2, "--dataset mnist"),
    (("--family", "transformer", "--dataset", "mnist"), 2, "random token ids"),
    (("--family", "transformer", "--widths", "16,24"), 2, "multiples of its head size 16"),
    (("--widths", "8,8"), 2, "distinct integers"),
    (("--steps", "0"), 2, "expected an integer >= 1"),
    (("--lr", "-1"), 2, "expected a number > 0"),
])
def test_command_usage_errors(args, code, needle):
    result, _, err = invoke("coordcheck", *args)
    assert result == code and needle in err


def test_command_help_has_examples():
    code, out, _ = invoke("coordcheck", "--help")
    assert code == 0 and "examples:" in out and "torchinit coordcheck --family" in out
    code, out, _ = invoke("--help")
    assert code == 0 and "torchinit coordcheck" in out


# -- the published finding (slow) ---------------------------------------------------------------
def _mnist_batch() -> tuple[torch.Tensor, torch.Tensor]:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    data = load_dataset("mnist", MNIST_DIR)
    return mlp_batch(data.images, data.labels, batch_size=256, seed=0)


@pytest.mark.slow
def test_mnist_mlp_adam_logits_flat_under_mup_and_growing_under_sp():
    """MLP on MNIST, Adam lr 1e-2, widths 64..2048, 3 steps: after the last step the logits'
    mean |x| changes by at most 2x from width 64 to 2048 under μP (base width 64) and grows by
    at least 8x under SP."""
    batch = _mnist_batch()
    widths = [64 * 2 ** k for k in range(6)]
    checks = {name: coord_check(mlp, widths, plan_fn, batch, steps=3, lr=1e-2, label=name)
              for name, plan_fn in (("μP", mup_from(64)), ("SP", sp))}
    for check in checks.values():
        print(check.table())
    assert 0.5 <= checks["μP"].growth(LOGITS) <= 2.0
    assert checks["SP"].growth(LOGITS) >= 8.0


@pytest.mark.slow
def test_transformer_logits_flat_under_mup_and_growing_under_sp():
    batch = token_batch(8, 32, seed=0)
    widths = [64, 128, 256]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the μP variant's attention raises no μP warning
        mup_check = coord_check(transformer, widths, lambda w: ti.mup(lambda: transformer(64),
                                                         delta=lambda: transformer(128)),
                                batch, steps=3, lr=1e-2, label="μP")
    sp_check = coord_check(lambda w: transformer(w, attn_scale="sp"), widths, sp, batch,
                           steps=3, lr=1e-2, label="SP")
    print(mup_check.table(), sp_check.table(), sep="\n")
    assert 0.5 <= mup_check.growth(LOGITS) <= 2.0
    assert sp_check.growth(LOGITS) >= 1.4
    hidden = [layer for layer in mup_check.layers if ".attn.out" in layer or ".ffn.down" in layer]
    assert max(mup_check.growth(layer) for layer in hidden) <= 1.5
    assert max(sp_check.growth(layer) for layer in hidden) >= 2.0
