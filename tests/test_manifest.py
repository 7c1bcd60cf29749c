"""The manifest: its path index, batch replacement, and JSON read back with every field checked."""

from __future__ import annotations

import dataclasses
import json

import pytest
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError

from .zoo import Everything, TiedLM, full_plan


def test_index_finds_paths_and_aliases():
    manifest = full_plan().explain(TiedLM())
    assert manifest["head.weight"] is manifest["embed.weight"]
    assert "head.weight" in manifest and "embed.weight" in manifest and "nope" not in manifest
    with pytest.raises(KeyError):
        manifest["nope"]
    for record in manifest:
        assert manifest[record.path] is record


def test_two_records_for_one_path_are_rejected():
    record = full_plan().explain(nn.Linear(2, 2))["weight"]
    with pytest.raises(ConfigError, match=r"'weight' names records\[0\] and records\[1\]"):
        ti.Manifest((record, record))
    alias = dataclasses.replace(record, path="other", aliases=("weight",))
    with pytest.raises(ConfigError, match="'weight'"):
        ti.Manifest((record, alias))


def test_replace_records_replaces_many_in_one_pass():
    manifest = full_plan().explain(Everything())
    new = [dataclasses.replace(r, scale=2.0) for r in list(manifest)[::3]]
    replaced = manifest.replace_records(new)
    one_by_one = manifest
    for record in new:
        one_by_one = one_by_one.replace_record(record)
    assert replaced == one_by_one and replaced.paths() == manifest.paths()
    assert all(replaced[r.path].scale == 2.0 for r in new)
    with pytest.raises(KeyError):
        manifest.replace_record(dataclasses.replace(new[0], path="nope"))


# --- from_json: the library's error, naming the field path ---------------------------------------

def _document() -> dict:
    return json.loads(full_plan().explain(Everything(), seed=4).to_json())


def _broken(change) -> str:
    document = _document()
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize("text,where", [
    ("[]", "the document must be an object"),
    ("null", "the document must be an object"),
    ("{}", "records is missing"),
    ('{"records": {}}', "records must be a list"),
    ('{"records": [{}]}', r"records\[0\]\.shape is missing"),
    ('{"records": [null]}', r"records\[0\] must be an object"),
    ("{", "not valid JSON"),
    ("[" * 100_000, "not valid JSON"),
    ('{"seed": 1' + "0" * 5000 + "}", "not valid JSON"),
])
def test_from_json_rejects_what_is_not_a_manifest(text, where):
    with pytest.raises(ConfigError, match=where):
        ti.Manifest.from_json(text)


@pytest.mark.parametrize("change,where", [
    (lambda d: d["records"][3].update(shape="abc"), r"records\[3\]\.shape must be a list"),
    (lambda d: d["records"][1].update(shape=[2, -1]), r"records\[1\]\.shape\[1\] must be a non"),
    (lambda d: d["records"][2].pop("path"), r"records\[2\]\.path is missing"),
    (lambda d: d["records"][0].update(dtype=3), r"records\[0\]\.dtype must be a string"),
    (lambda d: d["records"][0].update(key=[1]), r"records\[0\]\.key must be \[seed, path\]"),
    (lambda d: d["records"][0].update(key=["1", "p"]), r"records\[0\]\.key\[0\] must be an int"),
    (lambda d: d["records"][0].update(init={"name": "nope"}), r"records\[0\]\.init: "),
    (lambda d: d["records"][0].update(init=[1]), r"records\[0\]\.init must be an object"),
    (lambda d: d["records"][0]["fans"].update(fan_in="x"),
     r"records\[0\]\.fans\.fan_in must be an integer"),
    (lambda d: d["records"][0].update(std=True), r"records\[0\]\.std must be a number"),
    (lambda d: d["records"][0].update(aliases="a"), r"records\[0\]\.aliases must be a list"),
    (lambda d: d["records"][0].update(values=[1.0]), r"records\[0\]\.values has 1 value"),
    (lambda d: d.update(seed="x"), "seed must be an integer"),
    (lambda d: d.update(data=[]), "data must be an object"),
])
def test_from_json_names_the_field(change, where):
    with pytest.raises(ConfigError, match=where) as info:
        ti.Manifest.from_json(_broken(change))
    assert not isinstance(info.value, (KeyError, TypeError))


def test_from_json_names_block_fields():
    document = _document()
    index = next(i for i, r in enumerate(document["records"]) if r["blocks"])
    document["records"][index]["blocks"][0]["rows"] = [1]
    with pytest.raises(ConfigError, match=rf"records\[{index}\]\.blocks\[0\]\.rows must be"):
        ti.Manifest.from_json(json.dumps(document))


def test_from_json_quotes_only_a_short_prefix():
    with pytest.raises(ConfigError) as info:
        ti.Manifest.from_json(_broken(lambda d: d["records"][0].update(shape="x" * 10_000)))
    assert len(str(info.value)) < 300


def test_json_round_trip_is_exact():
    manifest = full_plan().explain(Everything(), seed=4)
    assert ti.Manifest.from_json(manifest.to_json()) == manifest
