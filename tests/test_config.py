"""Plan files: round trips in YAML, TOML and JSON, precise errors, and no code execution."""

from __future__ import annotations

import importlib.abc
import json
import re
import sys
import warnings
from pathlib import Path

import pytest
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError, PlanError
from torchinit._plan.config import load_plan, plan_from_dict, save_plan

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plan-files.md"


def small_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(6, 8),
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.LSTM(5, 3),
        nn.Embedding(10, 4, padding_idx=0),
        nn.LayerNorm(4),
    )


def full_plan() -> ti.Plan:
    """Type names and globs, roles, a block rule, an init function, tags, torch fans, arguments."""
    return ti.Plan([
        ti.Rule(type="Linear", role="weight",
                init=ti.KaimingNormal(mode="fan_out", nonlinearity="relu")),
        ti.Rule(type="Conv*", name="weight", init=ti.XavierUniform(gain=1.5), fan_convention="torch"),
        ti.Rule(role="bias", init="zeros", tags=["no_decay"]),
        ti.Rule(type=[nn.BatchNorm2d, "LayerNorm"], init={"function": "torch_default"},
                tags=["no_decay", "norm"]),
        ti.Rule(type="LSTM", role=["input", "recurrent"], init=ti.Orthogonal(gain=0.5)),
        ti.Rule(type="LSTM", role="bias", block="f", init=ti.Constant(1.0),
                label="forget gate"),
        ti.Rule(type="Embedding", init=ti.TruncatedNormal(0.0, 0.02, -0.04, 0.04)),
    ], on_unmatched="error", zero_padding=True, name="small")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(PlanError) as info:
        load_plan(path)
    return str(info.value)


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".toml", ".json"])
def test_round_trip_gives_an_equal_plan_and_the_same_initialization(tmp_path, suffix):
    plan = full_plan()
    path = tmp_path / f"plan{suffix}"
    plan.to_file(str(path))
    loaded = ti.Plan.from_file(str(path))
    assert loaded == plan
    assert (loaded.on_unmatched, loaded.zero_padding, loaded.name) == ("error", True, "small")
    original = ti.apply(small_model(), plan, seed=7)
    again = ti.apply(small_model(), loaded, seed=7)
    assert again.digest() == original.digest()
    assert again.diff(original) == []
    assert original["3.bias_hh_l0"].blocks[0].name == "f"  # the block rule took part


def test_digest_sees_a_changed_argument(tmp_path):
    """The digest comparison above can fail: one argument changed in the file changes it."""
    path = tmp_path / "plan.json"
    full_plan().to_file(path)
    data = json.loads(path.read_text())
    data["rules"][4]["init"]["gain"] = 0.25
    path.write_text(json.dumps(data))
    changed = ti.apply(small_model(), load_plan(path), seed=7)
    assert changed.digest() != ti.apply(small_model(), full_plan(), seed=7).digest()


def test_saved_files_carry_the_version_and_options(tmp_path):
    plan = full_plan().with_options(on_unmatched="warn", zero_padding=False)
    for suffix, version in [(".yaml", "version: 2"), (".toml", "version = 2"),
                            (".json", '"version": 2')]:
        path = tmp_path / f"plan{suffix}"
        plan.to_file(path)
        text = path.read_text()
        assert text.splitlines()[int(suffix == ".json")].strip(" ,") == version
        assert load_plan(path) == plan and load_plan(path).zero_padding is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "plan.toml", "plan.yaml"]


def test_empty_plan_is_valid(tmp_path):
    path = write(tmp_path, "empty.yaml", "rules: []\n")
    assert load_plan(path) == ti.Plan([])
    assert plan_from_dict({"rules": [], "version": 1}) == ti.Plan([])


def test_documented_examples_load_as_the_same_plan(tmp_path):
    blocks = re.findall(r"```(yaml|toml|json)(?: title=\"[^\"]*\")?\n(.*?)```", DOCS.read_text(),
                        flags=re.S)
    examples = [(fmt, text) for fmt, text in blocks if "small-cnn-rnn" in text]
    assert [fmt for fmt, _ in examples] == ["yaml", "toml", "json"]
    plans = [load_plan(write(tmp_path, f"example.{fmt}", text)) for fmt, text in examples]
    assert plans[0] == plans[1] == plans[2]
    manifest = plans[0].explain(small_model())
    assert manifest["4.weight"].zero_rows == (0,)


def test_documented_error_message_is_the_real_one(tmp_path, monkeypatch):
    text = DOCS.read_text()
    example = re.search(r"For this file:\n\n```yaml(?: title=\"[^\"]*\")?\n(.*?)```", text,
                        flags=re.S).group(1)
    write(tmp_path, "plan.yaml", example)
    monkeypatch.chdir(tmp_path)
    message = load_error(Path("plan.yaml"))
    assert f"PlanError: {message}\n" in text


# -- malformed files ---------------------------------------------------------------------------
def test_malformed_yaml_reports_line_and_column(tmp_path):
    path = write(tmp_path, "bad.yaml", "rules:\n  - match: {type: Linear\n    init: zeros\n")
    message = load_error(path)
    assert message.startswith(f"{path}:3:") and "invalid YAML" in message


def test_malformed_json_reports_line_and_column(tmp_path):
    path = write(tmp_path, "bad.json", '{"rules": [\n  {"init": "zeros",}\n]}')
    assert load_error(path) == (f"{path}:2:20: invalid JSON: Expecting property name enclosed"
                                " in double quotes")


def test_malformed_toml_reports_the_line(tmp_path):
    path = write(tmp_path, "bad.toml", 'version = 1\n[[rules]]\ninit = "zeros\n')
    message = load_error(path)
    assert message.startswith(f"{path}: invalid TOML") and "line 3" in message


@pytest.mark.parametrize("text", ["", "- init: zeros\n", "rules\n"])
def test_a_file_that_is_not_a_mapping(tmp_path, text):
    message = load_error(write(tmp_path, "plan.yaml", text))
    assert "must be a mapping with a 'rules' list" in message


def test_key_given_twice_in_yaml_points_at_the_second(tmp_path):
    path = write(tmp_path, "plan.yaml",
                 "rules:\n  - init: zeros\n    role: bias\n    init: ones\n")
    assert load_error(path) == f"{path}:4: rules[0].init: key 'init' is given twice"


def test_key_given_twice_in_json(tmp_path):
    path = write(tmp_path, "plan.json", '{"rules": [{"init": "zeros", "init": "ones"}]}')
    assert load_error(path) == f"{path}: key 'init' is given twice in one JSON object"


# -- structure ---------------------------------------------------------------------------------
def test_unknown_top_level_key_with_suggestion_and_line(tmp_path):
    path = write(tmp_path, "plan.yaml", "name: x\nrule:\n  - init: zeros\n")
    message = load_error(path)
    assert message.startswith(f"{path}:2: rule: unknown plan key 'rule'")
    assert "Did you mean 'rules'?" in message


def test_unknown_rule_key_with_suggestion_and_line(tmp_path):
    path = write(tmp_path, "plan.yaml",
                 "rules:\n  - init: zeros\n  - role: bias\n    intt: zeros\n")
    message = load_error(path)
    assert message.startswith(f"{path}:4: rules[1].intt: unknown rule key 'intt'")
    assert "Did you mean 'init'?" in message


def test_unknown_selector_key_with_suggestion_and_line(tmp_path):
    path = write(tmp_path, "plan.yaml",
                 "rules:\n  - role: bias\n    typ: Linear\n    init: zeros\n")
    message = load_error(path)
    assert message.startswith(f"{path}:3: rules[0].typ: unknown rule key 'typ'")
    assert "Did you mean 'type'?" in message
    version_1 = write(tmp_path, "v1.yaml",
                      "rules:\n  - match:\n      role: bias\n      typ: Linear\n    init: zeros\n")
    message = load_error(version_1)
    assert message.startswith(f"{version_1}:4: rules[0].match.typ: unknown selector key 'typ'")


def test_version_1_match_mappings_load_with_a_warning_naming_the_new_form(tmp_path):
    path = write(tmp_path, "v1.yaml", "version: 1\nrules:\n  - match: {type: Linear, role: bias}"
                 "\n    init: zeros\n")
    with pytest.warns(DeprecationWarning, match=r"Rule\(type='Linear', role='bias', init=\.\.\.\)"
                      r" \(save the plan again"):
        plan = load_plan(path)
    assert plan == ti.Plan([ti.Rule(type="Linear", role="bias", init="zeros")])
    saved = tmp_path / "v2.yaml"
    plan.to_file(saved)
    assert "match" not in saved.read_text() and "version: 2" in saved.read_text()
    both = write(tmp_path, "both.yaml", "rules:\n  - match: {role: bias}\n    role: weight\n"
                 "    init: zeros\n")
    assert load_error(both).startswith(f"{both}:3: rules[0].role: role is given both in 'match'")


def test_unknown_key_in_an_init_function_reference(tmp_path):
    path = write(tmp_path, "plan.json",
                 '{"rules": [{"init": {"function": "torch_default", "gain": 2.0}}]}')
    message = load_error(path)
    assert message.startswith(f"{path}: rules[0].init.gain: unknown init function reference"
                              " key")


def test_missing_rules_and_missing_init(tmp_path):
    assert "missing key 'rules'" in load_error(write(tmp_path, "a.yaml", "name: x\n"))
    path = write(tmp_path, "b.yaml", "rules:\n  - init: zeros\n  - role: bias\n")
    assert load_error(path).startswith(f"{path}:3: rules[1]: the rule has no 'init'")


@pytest.mark.parametrize(("text", "field", "expected"), [
    ("rules: {init: zeros}\n", "rules", "must be a list of rules, got dict"),
    ("rules:\n  - zeros\n", "rules[0]", "must be a rule (a Rule, or a mapping with 'init'"),
    ("rules:\n  - init: zeros\n    tags: 3\n", "rules[0].tags",
     "tags must be a string or a list of strings, got int 3"),
    ("on_unmatched: ignore\nrules: []\n", "on_unmatched",
     "must be one of ('error', 'warn', 'keep'), got str 'ignore'"),
    ("zero_padding: 'yes'\nrules: []\n", "zero_padding", "must be true or false"),
    ("rules:\n  - init: zeros\n    fan_convention: fan_in\n", "rules[0].fan_convention",
     "must be one of ('semantic', 'torch')"),
    ("rules:\n  - init: zeros\n    match: Linear\n", "rules[0].match",
     "match must be a mapping of selector keys"),
    ("rules:\n  - init: zeros\n    ndim: true\n", "rules[0].ndim",
     "ndim must be a non-negative integer or a list of them, got bool True"),
    ("rules:\n  - init: zeros\n    type: [Linear, 3]\n", "rules[0].type",
     "type must be a module type name (or glob), a module class, or a list of them"),
    ("rules:\n  - init: zeros\n    label: [a]\n", "rules[0].label", "label must be a string"),
    ("rules:\n  - init: zeros\n    role:\n", "rules[0].role", "role is null; give a value"),
    ("rules:\n  - init: zeros\n    optional: 1\n", "rules[0].optional",
     "optional must be true or false, got int 1"),
    ("rules:\n  - init: 0.5\n", "rules[0].init", "init must be an initializer, its name"),
    ("rules:\n  - init: {stddev: 0.5}\n", "rules[0].init", "an init mapping needs 'name'"),
])
def test_wrong_types_name_the_field(tmp_path, text, field, expected):
    path = write(tmp_path, "plan.yaml", text)
    message = load_error(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: {re.escape(field)}: ", message), message
    assert expected in message


def test_wrong_types_in_json_and_toml_name_file_and_field(tmp_path):
    path = write(tmp_path, "plan.json", '{"rules": [{"init": "zeros", "tags": 3}]}')
    assert load_error(path).startswith(f"{path}: rules[0].tags: tags must be a string or a list")
    path = write(tmp_path, "plan.toml", 'rules = "none"\n')
    assert load_error(path).startswith(f"{path}: rules: must be a list of rules, got str")


@pytest.mark.parametrize("version", ["3", "true", "'1'"])
def test_unsupported_version(tmp_path, version):
    path = write(tmp_path, "plan.yaml", f"rules: []\nversion: {version}\n")
    message = load_error(path)
    assert message.startswith(f"{path}:2: version: unsupported plan file version")
    assert "reads versions 1 and 2" in message


def test_unsupported_extension_for_reading_and_writing(tmp_path):
    path = write(tmp_path, "plan.ini", "rules = []\n")
    for call in (lambda: load_plan(path), lambda: save_plan(full_plan(), tmp_path / "p.cfg")):
        with pytest.raises(ConfigError, match=r"\.yaml, \.yml, \.toml, \.json") as info:
            call()
        assert not isinstance(info.value, PlanError)
    assert not (tmp_path / "p.cfg").exists()


# -- names and arguments -----------------------------------------------------------------------
def test_unknown_initializer_name_with_suggestion_and_line(tmp_path):
    path = write(tmp_path, "plan.yaml", "rules:\n  - role: bias\n    init: zeros\n"
                 "  - role: weight\n    init:\n      name: xavier_unifrom\n")
    message = load_error(path)
    assert message.startswith(f"{path}:6: rules[1].init.name: unknown initializer")
    assert "Did you mean 'xavier_uniform'" in message


def test_unknown_bare_initializer_name(tmp_path):
    path = write(tmp_path, "plan.yaml", "rules:\n  - init: zeroes\n")
    message = load_error(path)
    assert message.startswith(f"{path}:2: rules[0].init: unknown initializer 'zeroes'")
    assert "Did you mean 'zeros'" in message


def test_bad_initializer_argument_names_the_argument_and_line(tmp_path):
    path = write(tmp_path, "plan.yaml", "rules:\n  - init: zeros\n  - init: ones\n"
                 "  - type: Linear\n    init:\n      name: normal\n"
                 "      mean: 0.0\n      stddev: -0.5\n")
    assert load_error(path) == (f"{path}:8: rules[2].init.stddev: normal: stddev must be >= 0,"
                                " got -0.5")


def test_bad_argument_is_found_among_arguments_valid_only_together(tmp_path):
    """a=3 alone is invalid with the default b=2; the culprit is still stddev."""
    path = write(tmp_path, "plan.yaml", "rules:\n  - init: {name: trunc_normal, a: 3.0, b: 5.0,"
                 " stddev: -1.0}\n")
    assert "rules[0].init.stddev: trunc_normal: stddev must be >= 0" in load_error(path)


@pytest.mark.parametrize("value", ["null", "[1]", "true", '"fan"'])
def test_initializer_argument_of_any_wrong_type_is_a_plan_error(tmp_path, value):
    path = write(tmp_path, "plan.json", '{"rules": [{"init": {"name": "variance_scaling",'
                 f' "scale": 2.0, "distribution": {value}}}}}]}}')
    assert load_error(path).startswith(f"{path}: rules[0].init.distribution: ")


def test_unknown_initializer_argument_with_suggestion(tmp_path):
    path = write(tmp_path, "plan.yaml",
                 "rules:\n  - init:\n      name: kaiming_normal\n      nonlinearty: relu\n")
    message = load_error(path)
    assert message.startswith(f"{path}:4: rules[0].init.nonlinearty: kaiming_normal has no")
    assert "Did you mean 'nonlinearity'?" in message


def test_yaml_exponent_without_decimal_point_gets_a_hint(tmp_path):
    path = write(tmp_path, "plan.yaml", "rules:\n  - init: {name: normal, stddev: 1e-5}\n")
    message = load_error(path)
    assert "rules[0].init.stddev" in message
    assert "YAML reads '1e-5' as a string; write 1.0e-05 for the number" in message
    fixed = write(tmp_path, "fixed.yaml", "rules:\n  - init: {name: normal, stddev: 1.0e-05}\n")
    assert load_plan(fixed).rules[0].init == ti.Normal(0.0, 1e-5)


def test_unknown_module_type_name(tmp_path):
    path = write(tmp_path, "plan.yaml",
                 "rules:\n  - role: weight\n    type: Lienar\n    init: zeros\n")
    message = load_error(path)
    assert message.startswith(f"{path}:3: rules[0].type: unknown module type 'Lienar'")
    assert "Did you mean 'Linear'" in message


def test_unknown_role_and_init_function_name_the_field(tmp_path):
    path = write(tmp_path, "plan.json",
                 '{"rules": [{"type": "Linear", "role": "biass", "init": "zeros"}]}')
    message = load_error(path)
    assert message.startswith(f"{path}: rules[0].role: unknown role 'biass'")
    path = write(tmp_path, "plan.toml", '[[rules]]\ninit = { function = "torch_defualt" }\n')
    message = load_error(path)
    assert message.startswith(f"{path}: rules[0].init.function: unknown init function")
    assert "Did you mean 'torch_default'" in message
    path = write(tmp_path, "old.toml", '[[rules]]\ninit = { factory = "torch_defualt" }\n')
    with pytest.warns(DeprecationWarning, match="is now {function: name}"):
        message = load_error(path)
    assert message.startswith(f"{path}: rules[0].init.factory: unknown init function")


def test_registered_module_type_is_nameable(tmp_path):
    class ConfigTestBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(2, 2)

    ti.register_module_type(ConfigTestBlock, name="ConfigTestBlock")
    plan = ti.Plan([ti.Rule(within=ConfigTestBlock, init="zeros")])
    path = tmp_path / "plan.yaml"
    plan.to_file(path)
    assert "within: ConfigTestBlock" in path.read_text()
    assert load_plan(path) == plan


def test_plan_from_dict_messages_start_with_the_field():
    with pytest.raises(PlanError) as info:
        ti.Plan.from_dict({"rules": [{"init": "zeros"}, {"init": {"name": "orthogonal",
                                                                   "gain": "big"}}]})
    assert str(info.value).startswith("rules[1].init.gain: orthogonal: gain must be a real")


# -- no code execution -------------------------------------------------------------------------
class RecordImports(importlib.abc.MetaPathFinder):
    """Records every import attempt of a module not yet imported."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname, path, target=None):
        self.names.append(fullname)
        return None


@pytest.mark.parametrize(("selector", "init", "field"), [
    ('type: torchinit_payload.Linear', "zeros", "type: unknown module type"),
    ('within: "torchinit_payload.*"', "zeros", "within: no registered module type"),
    ("role: bias", "torchinit_payload.system", "init: unknown initializer"),
    ("role: bias", "{name: torchinit_payload.system}", "init.name: unknown initializer"),
    ("role: bias", "{function: torchinit_payload.system}", "init.function: unknown init function"),
    ("type: torch.nn.Linear", "zeros", "type: unknown module type"),
    ("role: bias", "os.system", "init: unknown initializer"),
])
def test_dotted_names_fail_lookup_without_importing(tmp_path, selector, init, field):
    path = write(tmp_path, "plan.yaml", f"rules:\n  - {selector}\n    init: {init}\n")
    finder = RecordImports()
    sys.meta_path.insert(0, finder)
    try:
        message = load_error(path)
    finally:
        sys.meta_path.remove(finder)
    assert message.startswith(f"{path}:3: rules[0].{field}" if field.startswith("init")
                              else f"{path}:2: rules[0].{field}")
    assert not [n for n in finder.names if n.startswith("torchinit_payload")]


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.mkdir [{target}]",
    "!!python/object/new:pathlib.Path [{target}]",
    "!!python/name:os.system",
    "!!python/module:os",
])
def test_yaml_python_tags_are_refused(tmp_path, tag):
    target = tmp_path / "created"
    init = tag.format(target=json.dumps(str(target)))
    path = write(tmp_path, "plan.yaml", f"rules:\n  - role: bias\n    init: {init}\n")
    message = load_error(path)
    assert message.startswith(f"{path}:3:") and "could not determine a constructor" in message
    assert "!!python/... are refused" in message
    assert not target.exists()


# -- saving ------------------------------------------------------------------------------------
class Unregistered(nn.Module):
    pass


def test_saving_an_unregistered_module_type_names_the_file_and_writes_nothing(tmp_path):
    plan = ti.Plan([ti.Rule(type=Unregistered, init="zeros")])
    path = tmp_path / "plan.yaml"
    path.write_text("rules: []\n")
    with pytest.raises(ConfigError, match=r"cannot write .*plan\.yaml: module type .*Unregistered"
                                          r" has no registered name"):
        plan.to_file(path)
    assert path.read_text() == "rules: []\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.yaml"]


def test_toml_refuses_null_values_and_leaves_no_file(tmp_path, monkeypatch):
    plan = ti.Plan([ti.Rule(role="bias", init="zeros")])
    monkeypatch.setattr(plan, "to_dict", lambda: {"rules": [{"init": {"name": "x", "y": None}}]})
    with pytest.raises(ConfigError, match=r"rules\[0\]\.init\.y is null None, which a TOML plan"):
        plan.to_file(tmp_path / "plan.toml")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "plan.json"
    full_plan().to_file(path)
    before = path.read_text()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("torchinit._plan.config.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        ti.Plan([ti.Rule(init="zeros")]).to_file(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


@pytest.mark.parametrize(("module", "call"), [
    ("yaml", lambda p: load_plan(p / "plan.yaml")),
    ("yaml", lambda p: save_plan(full_plan(), p / "plan.yaml")),
    ("tomli_w", lambda p: save_plan(full_plan(), p / "plan.toml")),
    ("tomllib" if sys.version_info >= (3, 11) else "tomli", lambda p: load_plan(p / "plan.toml")),
])
def test_missing_optional_dependency(tmp_path, monkeypatch, module, call):
    write(tmp_path, "plan.yaml", "rules: []\n")
    write(tmp_path, "plan.toml", "rules = []\n")
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ConfigError, match=r"pip install torchinit\[config\]"):
        call(tmp_path)


def test_unused_rules_in_a_loaded_plan_still_warn(tmp_path):
    """A loaded plan behaves like the original, warnings included."""
    path = tmp_path / "plan.yaml"
    (full_plan() + [ti.Rule(type="GRU", init="zeros")]).to_file(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_plan(path).explain(small_model())
    assert any("matches no parameter" in str(w.message) for w in caught)
