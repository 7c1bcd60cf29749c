"""WriteAudit: uninitialized tensors and tensors written more than once, by path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit._audit import POISON, AuditReport, WriteAudit
from torchinit.errors import PlanError

PLAN = ti.Plan([ti.Rule(role="weight", init=ti.KaimingNormal()),
                ti.Rule(role="bias", init=ti.Zeros())])


class Rotary(nn.Module):
    """A layer with a buffer computed in __init__ (rotary inverse frequencies)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)


def test_flags_a_buffer_left_uninitialized_after_to_empty():
    with torch.device("meta"):
        model = Rotary()
    with WriteAudit(model) as audit:
        model.to_empty(device="cpu")
        ti.apply(model, PLAN)  # parameters only: the buffer keeps to_empty's memory
    report = audit.report()
    assert report.never_written == ["inv_freq"]
    assert not report.ok and report.audited == 3
    assert "inv_freq: never written (uninitialized)" in report.table()
    with pytest.raises(PlanError, match="inv_freq"):
        report.raise_if_problems()


def test_a_complete_initialization_is_ok():
    with torch.device("meta"):
        model = Rotary()
    with WriteAudit(model) as audit:
        model.to_empty(device="cpu")
        ti.apply(model, PLAN)
        model.inv_freq.copy_(Rotary().inv_freq)
    report = audit.report()
    assert report.ok and report == AuditReport([], {}, {}, [], 3)
    report.raise_if_problems()


def test_flags_tensors_written_more_than_once():
    model = Rotary()
    with WriteAudit(model) as audit:
        ti.apply(model, PLAN)
        ti.apply(model, PLAN)  # weight, bias, weight, bias: two passes each
    assert audit.report().written_more_than_once == {"proj.weight": 2, "proj.bias": 2}


def test_one_fill_in_several_operations_is_one_pass():
    model = Rotary()
    with WriteAudit(model) as audit, torch.no_grad():
        model.proj.weight.normal_().mul_(0.1)  # sample, then scale: one write
        model.proj.bias.zero_()
    assert audit.report().ok


def test_writes_through_raw_pointers_are_seen():
    """The compiled CPU core fills ``out=`` tensors through their address, invisible to torch
    ops."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(128, 128), nn.Linear(128, 128))  # >= 4096 elements
    manifest = PLAN.explain(model)
    with WriteAudit(model) as audit, torch.no_grad():
        model.to_empty(device="cpu")
        for _ in range(2):
            for path, param in model.named_parameters():
                manifest[path].sample(out=param.detach())
    report = audit.report()
    assert report.never_written == [] and report.partially_written == {}
    assert report.written_more_than_once == {p: 2 for p, _ in model.named_parameters()}


def test_partial_writes_count_the_elements_left():
    with torch.device("meta"):
        model = nn.Linear(4, 3)
    with WriteAudit(model) as audit, torch.no_grad():
        model.to_empty(device="cpu")
        model.weight[:2].normal_()
        model.bias.zero_()
    report = audit.report()
    assert report.partially_written == {"weight": 4}
    assert "weight: 4 element(s) never written" in report.table()


def test_meta_tensors_left_are_never_written_and_values_from_before_count():
    model = Rotary()
    model.proj.to(torch.device("meta"))
    model.register_buffer("kept", torch.ones(3))
    with WriteAudit(model) as audit:
        pass
    assert audit.report().never_written == ["proj.weight", "proj.bias"]


def test_poison_patterns_are_nan_for_every_floating_dtype():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        int_dtype, pattern = POISON[torch.empty((), dtype=dtype).element_size()]
        value = torch.tensor([pattern], dtype=int_dtype).view(dtype)
        assert torch.isnan(value).all(), dtype


def test_report_is_available_after_the_block():
    audit = WriteAudit(nn.Linear(2, 2))
    with pytest.raises(PlanError, match="after the with-block"):
        audit.report()


def test_build_with_audit():
    model = ti.build(Rotary, PLAN, audit=True)
    assert model.torchinit_audit.ok and model.torchinit_audit.audited == 3
