"""Every deprecated spelling still works, warns with its replacement, and is in CHANGELOG.md."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import torchinit as ti

CHANGELOG = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()


def test_plan_resolve_is_explain():
    model = nn.Linear(3, 2)
    plan = ti.Plan([ti.Rule(init="zeros")])
    with pytest.warns(DeprecationWarning, match="use Plan.explain"):
        manifest = plan.resolve(model, 3)
    assert manifest.digest() == plan.explain(model, 3).digest()
    assert "`Plan.resolve`" in CHANGELOG


def test_rule_fans_is_fan_convention_in_code_and_files():
    with pytest.warns(DeprecationWarning, match="'fans' is now 'fan_convention'"):
        rule = ti.Rule(init="xavier_uniform", fans="torch")
    assert rule == ti.Rule(init="xavier_uniform", fan_convention="torch")
    with pytest.warns(DeprecationWarning, match="'fans' is now 'fan_convention'"):
        plan = ti.Plan.from_dict({"rules": [{"init": "xavier_uniform", "fans": "torch"}]})
    assert plan.rules == (rule,)
    assert "`fans`" in CHANGELOG and "`fan_convention`" in CHANGELOG


def test_kaiming_gain_is_a_number_and_calling_it_warns():
    init = ti.KaimingUniform(nonlinearity="relu")
    assert init.gain == 2 ** 0.5
    with pytest.warns(DeprecationWarning, match="'gain\\(\\)' is now 'gain'"):
        assert init.gain() == 2 ** 0.5
    assert "gain()" in CHANGELOG


def test_lsuv_takes_its_start_as_init():
    model = nn.Sequential(nn.Linear(8, 8))
    x = torch.randn(64, 8)
    plan = ti.Plan([ti.Rule(name="weight", init="orthogonal"), ti.Rule(name="bias", init="zeros")])
    new = ti.lsuv(model, x, plan, orthogonal_first=False)
    for old in ("plan", "manifest"):
        start = plan if old == "plan" else plan.explain(model)
        with pytest.warns(DeprecationWarning, match=f"'{old}' is now 'init'"):
            again = ti.lsuv(model, x, orthogonal_first=False, **{old: start})
        assert again.digest() == new.digest()
    assert "`lsuv(manifest=, plan=)`" in CHANGELOG


def test_build_apply_and_materialize_leave_their_manifest():
    plan = ti.Plan([ti.Rule(init="zeros")])
    applied = nn.Linear(3, 2)
    with pytest.raises(ti.errors.ConfigError, match="not been initialized"):
        ti.last_manifest(applied)
    manifest = ti.apply(applied, plan)
    assert ti.last_manifest(applied) is manifest
    built = ti.build(lambda: nn.Linear(3, 2), plan)
    assert ti.last_manifest(built).digest() == manifest.digest()
    with torch.device("meta"):
        meta = nn.Linear(3, 2)
    assert ti.materialize(meta, plan) is ti.last_manifest(meta)


def test_rule_match_is_keyword_selectors_in_code_and_files():
    rule = ti.Rule(type="Linear", role="bias", init="zeros")
    with pytest.warns(DeprecationWarning, match=r"Rule\(type='Linear', role='bias', init=\.\.\.\)"):
        assert ti.Rule(match={"type": "Linear", "role": "bias"}, init="zeros") == rule
    with pytest.warns(DeprecationWarning, match="'match' mapping is deprecated"):
        plan = ti.Plan.from_dict({"version": 1, "rules": [
            {"match": {"type": "Linear", "role": "bias"}, "init": "zeros"}]})
    assert plan.rules == (rule,)
    assert "`Rule(match=Select(...))`" in CHANGELOG


def test_factory_is_init_function_everywhere():
    with pytest.warns(DeprecationWarning, match=r"is now \{function: name\}"):
        rule = ti.Rule(init={"factory": "torch_default"})
    assert rule == ti.Rule(init={"function": "torch_default"})
    with pytest.warns(DeprecationWarning, match="is now torchinit.register_init_function"):
        assert ti.register_factory is ti.register_init_function
    from torchinit._plan import init_functions

    with pytest.warns(DeprecationWarning, match="InitFunction"):
        assert init_functions.InitFactory is init_functions.InitFunction
    sys.modules.pop("torchinit.plan.factories", None)
    with pytest.warns(DeprecationWarning, match="is now private"):
        factories = importlib.import_module("torchinit.plan.factories")
    assert factories is init_functions
    assert "`ti.register_factory`" in CHANGELOG and "`init: {function: name}`" in CHANGELOG


def test_truncated_normal_keras_names_what_it_resolves_to():
    with pytest.warns(DeprecationWarning, match="truncated_normal_std"):
        assert ti.initializers.get("truncated_normal_keras") == ti.TruncatedNormalStd()
    assert "`truncated_normal_keras`" in CHANGELOG
