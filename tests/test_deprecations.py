"""Every deprecated spelling still works, warns with its replacement, and is in CHANGELOG.md."""

from __future__ import annotations

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
