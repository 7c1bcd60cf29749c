"""Layers of other libraries: transformers' ``Conv1D`` by qualified name, timm's layers through
their torch base classes, and ``"Conv1D"`` as a module type name in rules and plan files."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import pytest
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError, UnknownNameError
from torchinit._plan import module_types

from .conftest import std_tolerance


def _conv1d() -> type[nn.Module]:
    """transformers' ``Conv1D`` class; skips the test without transformers."""
    return pytest.importorskip("transformers.pytorch_utils").Conv1D


def _quiet_explain(plan: ti.Plan, model: nn.Module) -> ti.Manifest:
    """``plan.explain(model)`` with every warning an error (no assumed-fans warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return plan.explain(model)


KAIMING_WEIGHTS = ti.Plan([
    ti.Rule(name="weight", init=ti.KaimingNormal(nonlinearity="relu")),
    ti.Rule(name="bias", init="zeros"),
])


# -- transformers' Conv1D ----------------------------------------------------------------------
def test_conv1d_fans_are_input_major():
    layer = _conv1d()(64, 256)  # Conv1D(nf, nx): weight (nx, nf) = (in, out)
    assert tuple(layer.weight.shape) == (256, 64)
    for name in ("weight", "bias"):
        got = ti.fans(layer, name)
        assert (got.fan_in, got.fan_out, got.assumed) == (256, 64, False), name
    torch_order = ti.fans(layer, "weight", convention="torch")
    assert (torch_order.fan_in, torch_order.fan_out) == (64, 256)


def test_kaiming_on_conv1d_scales_by_its_inputs():
    model = nn.Sequential(_conv1d()(64, 256))
    record = _quiet_explain(KAIMING_WEIGHTS, model)["0.weight"]
    assert record.std == math.sqrt(2 / 256)
    ti.apply(model, KAIMING_WEIGHTS, seed=3)
    drawn = model[0].weight.detach()
    assert abs(float(drawn.std()) - record.std) <= std_tolerance(record.std, drawn.numel())


def test_conv1d_with_torch_fans_keeps_torch_numbers_and_notes_the_difference():
    plan = ti.Plan([ti.Rule(name="weight", init=ti.KaimingNormal(nonlinearity="relu"),
                            fan_convention="torch"), ti.Rule(name="bias", init="zeros")])
    record = _quiet_explain(plan, nn.Sequential(_conv1d()(64, 256)))["0.weight"]
    assert record.std == math.sqrt(2 / 64)
    assert any("semantic fans are 256/64" in note for note in record.notes)


def test_gpt2_conv1d_fans():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=320,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    expected = {"attn.c_attn": (64, 192), "attn.c_proj": (64, 64), "mlp.c_fc": (64, 256),
                "mlp.c_proj": (256, 64)}
    for block in range(2):
        for owner, pair in expected.items():
            layer = model.get_submodule(f"transformer.h.{block}.{owner}")
            got = ti.fans(layer, "weight")
            assert tuple(layer.weight.shape) == pair and (got.fan_in, got.fan_out) == pair
    plan = ti.Plan([ti.Rule(type="Conv1D", name="weight", init=ti.XavierUniform())],
                   on_unmatched="keep")
    manifest = _quiet_explain(plan, model)
    c_fc = manifest["transformer.h.0.mlp.c_fc.weight"]
    assert c_fc.bound == pytest.approx(math.sqrt(6 / (64 + 256)))
    assert not any(r.fans.assumed for r in manifest.records if r.fans is not None)


def test_torchinit_does_not_import_transformers_or_timm():
    code = ("import sys, torch, torchinit as ti;"
            " ti.apply(torch.nn.Linear(3, 2), ti.Plan([ti.Rule(init=ti.XavierUniform()),"
            " ti.Rule(name='bias', init='zeros')]));"
            " print(sorted({'transformers', 'timm'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


# -- "Conv1D" as a module type name -------------------------------------------------------------
def test_conv1d_is_a_module_type_name_in_rules_and_plan_files(tmp_path):
    conv1d = _conv1d()
    rule = ti.Rule(type="Conv1D", name="weight", init="zeros")
    assert rule == ti.Rule(type=conv1d, name="weight", init="zeros")
    assert ti.Rule(type=conv1d, init="zeros").to_dict()["type"] == "Conv1D"
    path = tmp_path / "plan.json"
    ti.Plan([rule]).to_file(str(path))
    assert ti.Plan.from_file(str(path)).rules == (rule,)


def test_conv_glob_does_not_reach_conv1d():
    conv1d = _conv1d()
    assert conv1d not in module_types.module_types_matching("Conv*")
    assert nn.Conv1d in module_types.module_types_matching("Conv*")


def test_a_registered_class_named_conv1d_takes_precedence(monkeypatch):
    conv1d = _conv1d()
    monkeypatch.setattr(module_types, "_BY_NAME", dict(module_types._BY_NAME))

    class Conv1D(nn.Module):
        pass

    ti.register_module_type(Conv1D)
    assert module_types.module_type("Conv1D") is Conv1D
    with pytest.raises(ConfigError, match="transformers.pytorch_utils.Conv1D has no registered"):
        module_types.type_name(conv1d)  # its name now resolves to another class


def test_conv1d_name_without_transformers_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    monkeypatch.setitem(sys.modules, "transformers.pytorch_utils", None)
    with pytest.raises(UnknownNameError, match=r"'Conv1D' is transformers\.pytorch_utils\.Conv1D"
                       r", which cannot be imported here \(ModuleNotFoundError.*install"
                       r" transformers"):
        ti.Rule(type="Conv1D", init="zeros")


def test_misspelled_type_suggests_conv1d():
    with pytest.raises(UnknownNameError, match="'Conv1D'"):
        ti.Rule(type="Conv1Dd", init="zeros")


# -- timm ------------------------------------------------------------------------------------------
def _timm_cases() -> list[tuple[nn.Module, nn.Module]]:
    """(timm layer, the torch layer whose layout it should share)."""
    layers = pytest.importorskip("timm.layers")
    conv = nn.Conv2d(4, 6, 3)
    return [
        (layers.Linear(7, 5), nn.Linear(7, 5)),
        (layers.Conv2dSame(4, 6, 3), conv),
        (layers.StdConv2d(4, 6, 3), conv),
        (layers.StdConv2dSame(4, 6, 3), conv),
        (layers.ScaledStdConv2d(4, 6, 3), conv),
        (layers.ScaledStdConv2dSame(4, 6, 3), conv),
    ]


def test_timm_layers_resolve_through_their_torch_base_layouts():
    for layer, base in _timm_cases():
        kind = type(layer).__name__
        assert type(layer).__module__.startswith("timm.") and isinstance(layer, type(base))
        for name, param in layer.named_parameters():
            got = ti.fans(layer, name)
            assert not got.assumed, (kind, name)
            expected = ti.fans(base, name) if name in ("weight", "bias") else ti.Fans(1, 1)
            assert got == expected, (kind, name)


def test_kaiming_on_timm_layers_does_not_warn():
    model = nn.Sequential(*(layer for layer, _ in _timm_cases()))
    plan = ti.Plan([ti.Rule(init="ones"), ti.Rule(role="weight", init=ti.KaimingNormal())])
    manifest = _quiet_explain(plan, model)
    assert manifest["1.weight"].std == pytest.approx(math.sqrt(2 / 36))
