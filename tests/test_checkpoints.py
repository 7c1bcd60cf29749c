"""Checkpoint-aware build: what the file has is loaded, only the rest is initialized, and the
manifest says which is which. Real safetensors files are written in each test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import CheckpointError

safetensors_torch = pytest.importorskip("safetensors.torch")


class Net(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.body = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                  nn.Linear(32, 16))
        self.head = nn.Linear(16, classes)


HEAD = ti.Plan([ti.Rule(path="head.weight", init="xavier_uniform"),
                ti.Rule(path="head.bias", init="zeros")])


def _save_backbone(tmp_path, dtype=torch.float32, name="backbone.safetensors"):
    torch.manual_seed(0)
    source = Net()
    with torch.no_grad():
        source.body[1].running_mean.uniform_()
    state = {k: v.to(dtype) if v.is_floating_point() else v
             for k, v in source.state_dict().items() if not k.startswith("head.")}
    path = tmp_path / name
    safetensors_torch.save_file(state, str(path))
    return path, state


def test_head_only_missing_loads_the_backbone_and_initializes_the_head(tmp_path):
    path, state = _save_backbone(tmp_path)
    model = ti.build(Net, HEAD, seed=3, checkpoint=path)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    fresh = ti.build(Net, ti.Plan([ti.Rule(init="zeros")]) + HEAD, seed=3)  # no checkpoint
    assert torch.equal(model.head.weight, fresh.head.weight)
    manifest = model.torchinit_manifest
    assert manifest["body.0.weight"].source == "checkpoint"
    assert manifest["body.0.weight"].checkpoint == (str(path), "body.0.weight")
    assert manifest["head.weight"].source == "plan"
    summary = manifest.summary()
    assert summary["checkpoint"]["tensors"] == 7 and summary["plan"]["tensors"] == 2
    assert summary["checkpoint"]["bytes"] == 4 * sum(
        state[k].numel() for k in state if k in dict(Net().named_parameters()))
    assert "checkpoint[body.0.weight]" in manifest.table()
    again = ti.Manifest.from_json(manifest.to_json())
    assert again.digest() == manifest.digest() and again["embed.weight"].source == "checkpoint"


def test_mismatches_and_unexpected_keys_are_listed_before_anything_is_allocated(tmp_path):
    path, state = _save_backbone(tmp_path)
    bad = {**state, "body.0.weight": torch.zeros(7, 16), "extra.weight": torch.zeros(2)}
    with pytest.raises(CheckpointError) as err:
        ti.build(Net, HEAD, checkpoint=bad)
    text = str(err.value)
    assert "body.0.weight: the checkpoint's 'body.0.weight' has shape (7, 16), the model" \
           " (32, 16); rename keys with key_map=" in text
    assert "1 checkpoint key(s) the model does not have: extra.weight" in text
    model = ti.build(Net, HEAD, checkpoint={**state, "extra.weight": torch.zeros(2)},
                     strict=False)
    assert model.torchinit_manifest.summary()["unexpected_keys"] == ["extra.weight"]
    with pytest.raises(CheckpointError, match="'body.1.running_mean' is torch.int64"):
        ti.build(Net, HEAD, checkpoint={**state, "body.1.running_mean": torch.zeros(32).long()})


def test_a_rule_that_would_overwrite_loaded_parameters_needs_override(tmp_path):
    path, state = _save_backbone(tmp_path)
    plan = HEAD + [ti.Rule(path="body.0.*", init="zeros")]
    with pytest.raises(CheckpointError, match=r"rule #2 \(path=body\.0\.\* -> zeros\) matches only"
                                              r" parameters the checkpoint has.*override=True"):
        ti.build(Net, plan, checkpoint=path)
    plan = HEAD + [ti.Rule(path="body.0.*", init="zeros", override=True)]
    model = ti.build(Net, plan, checkpoint=path)
    assert torch.equal(model.body[0].weight, torch.zeros(32, 16))
    assert model.torchinit_manifest["body.0.weight"].source == "plan"
    assert torch.equal(model.body[3].weight, state["body.3.weight"])
    # a broad rule also covering what the file lacks is fine: the checkpoint wins where it has
    model = ti.build(Net, ti.Plan([ti.Rule(init="zeros")]), checkpoint=path)
    assert torch.equal(model.body[3].weight, state["body.3.weight"])
    assert torch.equal(model.head.weight, torch.zeros(10, 16))


def test_parameters_neither_loaded_nor_matched_are_an_error(tmp_path):
    path, _ = _save_backbone(tmp_path)
    with pytest.raises(CheckpointError, match="2 parameter.*neither in the checkpoint nor"
                                              " matched by a rule: head.weight, head.bias"):
        ti.build(Net, ti.Plan([]), checkpoint=path)
    model = ti.build(Net, ti.Plan([], on_unmatched="keep"), checkpoint=path)  # native head
    assert model.torchinit_manifest["head.weight"].init == ti.KaimingUniform(negative_slope=5**.5)


def test_key_maps_rename_prefixes(tmp_path):
    _, state = _save_backbone(tmp_path)
    wrapped = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / "ddp.safetensors"
    safetensors_torch.save_file(wrapped, str(path))
    by_dict = ti.build(Net, HEAD, checkpoint=path, key_map={"module.": ""})
    by_fn = ti.build(Net, HEAD, checkpoint=path, key_map=lambda k: k.removeprefix("module."))
    assert torch.equal(by_dict.body[0].weight, state["body.0.weight"])
    assert torch.equal(by_fn.body[0].weight, state["body.0.weight"])
    with pytest.raises(CheckpointError, match="both map to"):
        ti.build(Net, HEAD, checkpoint={"a.x": torch.zeros(1), "b.x": torch.zeros(1)},
                 key_map=lambda k: "x")


def test_sharded_index_files(tmp_path):
    _, state = _save_backbone(tmp_path)
    keys = sorted(state)
    first, second = keys[: len(keys) // 2], keys[len(keys) // 2:]
    safetensors_torch.save_file({k: state[k] for k in first}, str(tmp_path / "part-1.safetensors"))
    safetensors_torch.save_file({k: state[k] for k in second},
                                str(tmp_path / "part-2.safetensors"))
    index = {"metadata": {}, "weight_map": {**{k: "part-1.safetensors" for k in first},
                                            **{k: "part-2.safetensors" for k in second}}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model = ti.build(Net, HEAD, checkpoint=tmp_path / "model.safetensors.index.json")
    for key in keys:
        assert torch.equal(model.state_dict()[key], state[key]), key
    assert model.torchinit_manifest[second[-1]].checkpoint[0].endswith("part-2.safetensors")
    index["weight_map"][first[0]] = "../elsewhere.safetensors"
    (tmp_path / "bad.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="inside its folder"):
        ti.build(Net, HEAD, checkpoint=tmp_path / "bad.index.json")


def test_truncated_corrupt_and_missing_files_name_the_file(tmp_path):
    path, _ = _save_backbone(tmp_path)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors.*truncated or corrupt"):
        ti.build(Net, HEAD, checkpoint=cut)
    short = tmp_path / "short.safetensors"
    short.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"short\.safetensors"):
        ti.build(Net, HEAD, checkpoint=short)
    with pytest.raises(CheckpointError, match="does not exist"):
        ti.build(Net, HEAD, checkpoint=tmp_path / "nope.safetensors")


def test_dtypes_convert_on_read_and_build_dtype_wins(tmp_path):
    path, state = _save_backbone(tmp_path, dtype=torch.bfloat16, name="bf16.safetensors")
    model = ti.build(Net, HEAD, checkpoint=path)
    assert model.body[0].weight.dtype == torch.float32
    assert torch.equal(model.body[0].weight, state["body.0.weight"].float())
    path32, state32 = _save_backbone(tmp_path)
    half = ti.build(Net, HEAD, checkpoint=path32, dtype=torch.bfloat16)
    assert half.body[0].weight.dtype == torch.bfloat16
    assert torch.equal(half.body[0].weight, state32["body.0.weight"].to(torch.bfloat16))


def test_large_tensors_are_read_in_row_blocks(tmp_path, monkeypatch):
    from torchinit import _checkpoints as checkpoints

    weight = torch.randn(300, 40)
    path = tmp_path / "big.safetensors"
    safetensors_torch.save_file({"weight": weight, "bias": torch.zeros(300)}, str(path))
    monkeypatch.setattr(checkpoints, "BLOCK_BYTES", 40 * 4 * 7)  # 7 rows at a time
    model = ti.build(lambda: nn.Linear(40, 300), ti.Plan([]), checkpoint=path)
    assert torch.equal(model.weight, weight)


def test_tied_parameters_are_loaded_once(tmp_path):
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.head = nn.Linear(8, 20, bias=False)
            self.head.weight = self.embed.weight

    weight = torch.randn(20, 8)
    path = tmp_path / "tied.safetensors"
    safetensors_torch.save_file({"head.weight": weight}, str(path))  # under the alias
    model = ti.build(Tied, ti.Plan([]), checkpoint=path)
    assert torch.equal(model.embed.weight, weight) and model.head.weight is model.embed.weight
    assert [r.path for r in model.torchinit_manifest] == ["embed.weight"]


def test_materialize_a_meta_model_from_a_checkpoint(tmp_path):
    path, state = _save_backbone(tmp_path)
    with torch.device("meta"):
        model = Net()
    manifest = ti.materialize(model, HEAD, seed=3, checkpoint=path)
    assert torch.equal(model.body[1].running_mean, state["body.1.running_mean"])
    assert manifest["head.bias"].source == "plan"


def test_explain_prints_provenance_before_allocating(tmp_path):
    path, _ = _save_backbone(tmp_path)
    (tmp_path / "models.py").write_text(
        "from torch import nn\n"
        "def net():\n"
        "    return nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))\n")
    safetensors_torch.save_file({"0.weight": torch.zeros(4, 4), "0.bias": torch.zeros(4)},
                                str(tmp_path / "first.safetensors"))
    out = subprocess.run([sys.executable, "-m", "torchinit._cli", "explain", "models.py:net",
                          "--checkpoint", "first.safetensors"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "checkpoint[0.weight]" in out.stdout and "loaded: 2 tensors (80 bytes)" in out.stdout


def test_transformers_pretrained_backbone_with_a_new_head(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = transformers.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, vocab_size=100, num_labels=3)
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path, safe_serialization=True)
    saved = safetensors_torch.load_file(str(tmp_path / "model.safetensors"))

    def factory() -> nn.Module:
        return transformers.BertForSequenceClassification(config)

    model = ti.build(factory, "native", seed=1, checkpoint=tmp_path / "model.safetensors",
                     strict=False)  # the MLM head's keys are not in this model
    manifest = model.torchinit_manifest
    assert manifest["bert.encoder.layer.0.attention.self.query.weight"].source == "checkpoint"
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight,
                       saved["bert.encoder.layer.0.attention.self.query.weight"])
    assert manifest["classifier.weight"].source == "plan"
    assert manifest["classifier.weight"].init == ti.Normal(0.0, 0.02)
    assert any(k.startswith("cls.") for k in manifest.summary()["unexpected_keys"])
    fresh = ti.build(factory, "native", seed=1)
    assert torch.equal(model.classifier.weight, fresh.classifier.weight)


def test_loaded_parameters_map_the_file_privately(tmp_path):
    """In its own dtype on the CPU a loaded parameter is a copy-on-write map of the file:
    training it changes the parameter, never the file; with audit=True it is read instead."""
    path, state = _save_backbone(tmp_path)
    model = ti.build(Net, HEAD, checkpoint=path)
    with torch.no_grad():
        model.body[0].weight.add_(1.0)
    assert torch.equal(model.body[0].weight, state["body.0.weight"] + 1)
    on_disk = safetensors_torch.load_file(str(path))
    assert torch.equal(on_disk["body.0.weight"], state["body.0.weight"])
    audited = ti.build(Net, HEAD, checkpoint=path, audit=True)
    assert audited.torchinit_audit.ok, audited.torchinit_audit.table()
    assert torch.equal(audited.body[0].weight, state["body.0.weight"])
