"""Hostile and extreme input: every case fails with the library's own error, fast and small.

Each reproduction asserts the error *and* that it came within 2 s and 200 MB (Python
allocations traced by ``tracemalloc``): plan files (alias bombs, deep nesting, huge numbers,
size), regex selectors that would backtrack, initializer numbers that overflow, zero fans,
stream keys that collided with parameter names or could not hash huge seeds, a gzip IDX bomb
and a bad command-line value.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import re
import struct
import sys
import time
import tracemalloc
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit._cli import main
from torchinit.errors import (
    ConfigError,
    FanError,
    InitializerError,
    PlanError,
    short_repr,
)
from torchinit._experiments import idx
from torchinit._plan.readers import MAX_ALIAS_EXPANSION, MAX_DEPTH, MAX_FILE_BYTES
from torchinit._plan.regex import LinearRegex

SECONDS, MEGABYTES = 2.0, 200


@contextlib.contextmanager
def fast_and_small(seconds: float = SECONDS, megabytes: float = MEGABYTES) -> Iterator[None]:
    """Assert that the block ran within ``seconds`` and allocated at most ``megabytes``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes, f"peak {peak:.0f} MB"


def laughs(levels: int = 9) -> str:
    """A YAML "billion laughs" value: 9 levels of 9 aliases, 9**9 strings once expanded."""
    value = "&a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"
    for i in range(1, levels):
        value = f"&a{i} [{value}," + ",".join([f"*a{i - 1}"] * 8) + "]"
    return value


def load(tmp_path, name: str, text: str) -> ti.Plan:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return ti.Plan.from_file(str(path))


# -- plan files: aliases -----------------------------------------------------------------------
@pytest.mark.parametrize("where, body, field", [
    ("on_unmatched", "rules: []\non_unmatched: {bomb}\n", "on_unmatched[0]"),
    ("tags", "rules:\n  - init: zeros\n    tags: {bomb}\n", "rules[0].tags[0]"),
    ("init value", "rules:\n  - init: {{name: constant, value: {bomb}}}\n",
     "rules[0].init.value[0]"),
])
def test_yaml_alias_bomb_fails_fast_and_small(tmp_path, where, body, field):
    text = "version: 1\n" + body.format(bomb=laughs())
    assert len(text) < 420  # the 412-byte file
    with fast_and_small(), pytest.raises(PlanError) as err:
        load(tmp_path, "bomb.yaml", text)
    message = str(err.value)
    assert "bomb.yaml:" in message and field in message
    assert f"more than {MAX_ALIAS_EXPANSION} values" in message and len(message) < 400


def test_yaml_aliases_within_the_limit_still_work(tmp_path):
    plan = load(tmp_path, "aliases.yaml", """\
version: 2
rules:
  - role: weight
    init: &d {name: normal, stddev: 0.5}
  - role: bias
    init: {<<: *d, stddev: 0.1}
    tags: &t [a, b]
  - init: zeros
    name: x
    tags: *t
    optional: true
""")
    assert plan.rules[1].init == ti.Normal(0.0, 0.1) and plan.rules[2].tags == ("a", "b")


def test_recursive_yaml_alias_is_refused(tmp_path):
    with fast_and_small(), pytest.raises(PlanError, match=r"rules\[0\].*contains it"):
        load(tmp_path, "cycle.yaml", "rules: &r [*r]\n")


# -- plan files: nesting, numbers, size --------------------------------------------------------
DEEP = 10_000


@pytest.mark.parametrize("name, text", [
    ("deep.json", '{"rules": ' + "[" * DEEP + "]" * DEEP + "}"),
    ("deep.yaml", "rules: " + "[" * DEEP + "]" * DEEP + "\n"),
    ("deep.toml", "rules = " + "[" * DEEP + "]" * DEEP + "\n"),
    ("tables.toml", "rules = []\nname = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
    ("deep100.yaml", "rules: " + "[" * 100 + "]" * 100 + "\n"),
    ("block.yaml", "rules:\n" + "".join("  " * (i + 1) + "-\n" for i in range(100))),
])
def test_deep_nesting_is_a_plan_error_not_recursion_error(tmp_path, name, text):
    with fast_and_small(), pytest.raises(PlanError, match="nest") as err:
        load(tmp_path, name, text)
    assert name in str(err.value)


def test_nesting_limit_names_the_field_in_every_format():
    data = {"rules": [{"init": {"name": "zeros"}, "tags": [[[0]]]}]}
    for _ in range(MAX_DEPTH):
        data["rules"][0]["tags"] = [data["rules"][0]["tags"]]
    with fast_and_small(), pytest.raises(PlanError, match=r"rules\[0\]\.tags.*deeper than 32"):
        ti.Plan.from_dict(data)


@pytest.mark.parametrize("name, template", [
    ("int.yaml", "version: 1\nrules:\n  - init: {{name: uniform, low: 0.0, high: {n}}}\n"),
    ("int.json", '{{"version": 1, "rules": [{{"init": {{"name": "uniform", "high": {n}}}}}]}}'),
    ("int.toml", 'version = 1\n[[rules]]\ninit = {{ name = "uniform", high = {n} }}\n'),
])
def test_huge_integers_are_plan_errors_naming_the_field(tmp_path, name, template):
    with fast_and_small(), pytest.raises(PlanError) as err:
        load(tmp_path, name, template.format(n="9" * 400))
    assert f"{name}" in str(err.value) and "rules[0].init.high" in str(err.value)
    assert "out of range" in str(err.value) and "<int of about 400 digits>" in str(err.value)
    with fast_and_small(), pytest.raises(PlanError, match="too long to read"):
        load(tmp_path, name, template.format(n="9" * 5000))  # beyond int('...')'s own limit


def test_long_yaml_integer_literals_are_refused_unconverted(tmp_path):
    # YAML 1.1 sexagesimal ints (1:00:00...) convert in quadratic time; refused by length.
    with fast_and_small(), pytest.raises(PlanError, match="too long to read"):
        load(tmp_path, "sexagesimal.yaml", "version: 1" + ":00" * 100_000 + "\nrules: []\n")


def test_huge_integer_in_a_plan_dict_is_a_plan_error():
    with fast_and_small(), pytest.raises(PlanError, match=r"rules\[0\]\.init\.high"):
        ti.Plan.from_dict({"rules": [{"init": {"name": "uniform", "high": 10**400}}]})


@pytest.mark.parametrize("name, text, message", [
    ("nan.json", '{"rules": [{"init": {"name": "normal", "stddev": NaN}}]}',
     r"rules\[0\]\.init\.stddev: normal: stddev must be finite"),
    ("inf.yaml", "rules:\n  - init: {name: uniform, low: -.inf, high: 1.0}\n",
     r"rules\[0\]\.init\.low: uniform: low must be finite"),
    ("wide.yaml", "rules:\n  - init: {name: uniform, low: -1.0e+308, high: 1.0e+308}\n",
     r"rules\[0\]\.init\.high: uniform: high - low overflows float64"),
])
def test_plan_file_numbers_must_be_finite(tmp_path, name, text, message):
    with fast_and_small(), pytest.raises(PlanError, match=message):
        load(tmp_path, name, text)


def test_plan_file_size_is_limited(tmp_path):
    text = json.dumps({"rules": [], "name": "x" * MAX_FILE_BYTES})
    with fast_and_small(), pytest.raises(PlanError, match=f"larger than {MAX_FILE_BYTES} bytes"):
        load(tmp_path, "big.json", text)


def test_messages_quote_only_a_short_prefix_of_values():
    bomb: list = ["lol"]
    for _ in range(40):  # 2**40 strings if printed whole
        bomb = [bomb, bomb]
    with fast_and_small():
        cases = [{"rules": [], "on_unmatched": "x" * 100_000},
                 {"rules": [], "on_unmatched": bomb},
                 {"rules": [{"init": "zeros", "tags": bomb}]},
                 {"rules": [{"init": {"name": "kaiming_normal", "mode": bomb}}]},
                 {"rules": [{"init": "zeros", "type": "L" * 100_000}]},
                 {"rules": [], "y" * 100_000: 1}]
        for data in cases:
            with pytest.raises(PlanError) as err:
                ti.Plan.from_dict(data)
            assert len(str(err.value)) < 600, str(err.value)[:200]
        with pytest.raises(PlanError, match=re.escape("got list [[[[...], [...]], [[...]")):
            ti.Plan([], on_unmatched=bomb)  # type: ignore[arg-type]
    assert short_repr(10**5000 - 1) == "<int of about 5000 digits>"
    assert len(short_repr(bomb)) <= 80 and short_repr([1, "a"]) == "[1, 'a']"


# -- regex selectors ---------------------------------------------------------------------------
def test_pathological_regex_does_not_hang_resolve():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(4)])
    plan = ti.Plan([ti.Rule(regex=r"(.|.)*!", init="zeros")], on_unmatched="keep")
    with fast_and_small(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rule matches nothing
        assert all(r.kept for r in plan.explain(model))
        for pattern in (r"(.|.)*!", r"(a*)*b", r"(a|aa)*c", r"(x+x+)+y", r".*.*.*.*.*!"):
            assert LinearRegex(pattern).search("a" * 20_000 + "x" * 20_000) is False


PATTERNS = [r"^cells\.1\.", r"\.c_proj\.weight$", "^" + re.escape("enc.l-0#a b.weight") + "$",
            r"weight", r"^$", r"", r"(a|ab)(c|bcd)(d*)", r"x{2,3}y?", r"[^.]+\.bias$", r"\d+",
            r"\w+\.\W", r"(?s).", r"(?x) a b  # comment", r"(?:ab)*c", r"a{0,2}$", r"a{2,}b",
            r"[a-c\d_]", r"\Aa", r"a\Z", r"a$", r"(a|b)*abb", r"[]a]", r"é", r"^(?P<x>a)+$",
            r"a+?b", r"(^|\.)w(\.|$)", r"\s", r"[^\W\d]"]
TEXTS = ["", "a", "ab", "abb", "aab", "cells.1.weight", "x.cells.1.w", "h.c_proj.weight",
         "h.c_proj.weight\n", "a\n", "\n", "enc.l-0#a b.weight", "abcd", "abcdd", "xxy", "x.bias",
         "bias", "12", "a_1.!", " ", "é", "aaab", "abab", "]", "a.w.b", "w", "xw", "a\nb", "_"]


def test_regex_selectors_give_re_search_answers():
    for pattern in PATTERNS:
        regex = LinearRegex(pattern)
        for text in TEXTS:
            assert regex.search(text) == (re.search(pattern, text) is not None), (pattern, text)


def test_regex_selectors_in_plans_keep_working():
    model = nn.Sequential(nn.LSTM(3, 4, num_layers=2))
    paths = {p for p, _ in model.named_parameters()}
    plan = ti.Plan([ti.Rule(regex=r"\.bias_(ih|hh)_l1$", init="zeros")], on_unmatched="keep")
    zeroed = {r.path for r in plan.explain(model) if not r.kept}
    assert zeroed == {p for p in paths if re.search(r"\.bias_(ih|hh)_l1$", p)} and len(zeroed) == 2


@pytest.mark.parametrize("pattern, what", [
    (r"(a)\1", "backreferences"), (r"(?=a)", "lookahead"), (r"(?<!a)b", "lookahead"),
    (r"\bweight", "word boundaries"), (r"(?i)w", "inline flags"), (r"(?m)^w", "inline flags"),
    (r"(?>a)", "atomic groups"), (r"a*+", "possessive"), (r"(?i:a)", "scoped inline flags"),
    (r"a{3000}", "too large"), ("a" * 1001, "1001 characters"), ("(", "invalid"),
    ("(" * 450 + ")" * 450, "nested more than"),
])
def test_regex_constructs_that_need_backtracking_are_refused(pattern, what):
    with fast_and_small(), pytest.raises(ConfigError, match=re.escape(what)):
        ti.Rule(regex=pattern, init="zeros")


def test_refused_regex_in_a_plan_file_names_the_field(tmp_path):
    text = "version: 2\nrules:\n  - regex: '(a)\\1'\n    init: zeros\n"
    with fast_and_small(), pytest.raises(PlanError, match=r"plan\.yaml:3: rules\[0\]"
                                                          r"\.regex: .*backreferences"):
        load(tmp_path, "plan.yaml", text)


def test_regex_selectors_pickle():
    import pickle

    select = ti.Select(regex=r"^a\.")
    assert pickle.loads(pickle.dumps(select)) == select


# -- initializer numbers -----------------------------------------------------------------------
@pytest.mark.parametrize("build, message", [
    (lambda: ti.Uniform(-1e308, 1e308), "high - low overflows float64"),
    (lambda: ti.Uniform(1e308, 1.7e308), "mean of its values overflows"),
    (lambda: ti.Uniform(0.0, float("inf")), "high must be finite"),
    (lambda: ti.Uniform(0.0, 10**400), "beyond float64's largest value"),
    (lambda: ti.Normal(float("nan")), "mean must be finite"),
    (lambda: ti.Normal(0.0, 1e308), "largest value of its values overflows"),
    (lambda: ti.TruncatedNormal(mean=1e308, a=-1e308, b=1e308), "overflows float64"),
    (lambda: ti.Constant(float("nan")), "value must be finite"),
    (lambda: ti.KaimingNormal(negative_slope=1e200), "negative_slope"),
    (lambda: ti.KaimingNormal(negative_slope=10**400), "negative_slope"),
    (lambda: ti.XavierUniform(gain=1.7e308).check((4, 4)), "overflows float64"),
])
def test_initializer_arguments_that_overflow_are_refused(build, message):
    with fast_and_small(), pytest.raises(InitializerError, match=re.escape(message)):
        build()


ZERO_FAN = ["kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
            "general_rule", "variance_scaling"]


@pytest.mark.parametrize("name", ZERO_FAN)
def test_std_of_a_zero_fan_is_a_fan_error(name):
    init = ti.initializers.get(name)
    fans = ti.Fans(0, 5)
    for moment in (init.std, init.bound):
        with pytest.raises(FanError, match=f"{name}: fan_in is 0"):
            moment(fans)
    assert init.sample((5, 0), ti.Key(0, "w"), fans).shape == (5, 0)  # nothing to draw
    assert init.std(ti.Fans(5, 5)) > 0
    if name.startswith("kaiming"):  # only the fan the scale divides by matters
        assert ti.initializers.get(name, mode="fan_out").std(fans) > 0


def test_xavier_needs_both_fans_zero_to_fail():
    assert ti.XavierNormal().std(ti.Fans(0, 5)) == pytest.approx((2 / 5) ** 0.5)
    with pytest.raises(FanError, match="xavier_uniform: fan_avg is 0"):
        ti.XavierUniform().std(ti.Fans(0, 0))


@pytest.mark.parametrize("name", [*ZERO_FAN, "xavier_uniform", "orthogonal"])
def test_explain_of_a_zero_fan_layer_records_no_std(name):
    model = nn.Sequential(nn.Linear(0, 5), nn.Linear(5, 0), nn.Linear(0, 0))
    plan = ti.Plan([ti.Rule(role="weight", init=name), ti.Rule(role="bias", init="zeros")])
    manifest = plan.explain(model)
    weights = [r for r in manifest if r.path.endswith("weight")]  # fans 0/5, 5/0, 0/0
    if name in ZERO_FAN:  # the scale divides by fan_in
        assert weights[0].std is None and weights[0].bound is None
    assert weights[1].std is not None and weights[1].std > 0
    assert (weights[2].std is None) == (name != "orthogonal")
    assert manifest.table() and json.loads(manifest.to_json())["records"][0]["std"] is None or \
        name in ("xavier_uniform", "orthogonal")
    for preset in ("torch", "keras"):
        ti.presets.get(preset).explain(model)


# -- stream keys -------------------------------------------------------------------------------
def _v1_words(seed: int, text: str) -> tuple[int, int]:
    """The v1 definition, written out: blake2b(str(seed), 0x00, text)."""
    h = hashlib.blake2b(digest_size=8, person=b"torchinit.key.v1")
    h.update(str(seed).encode() + b"\x00" + text.encode())
    digest = h.digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def test_plain_and_block_key_words_are_unchanged():
    for seed, path in [(0, ""), (123, "encoder.layers.0.weight"), (-5, "ü"), (2**80, "x"),
                       (2**2048 - 1, "w")]:
        assert ti.Key(seed, path).words == _v1_words(seed, path)
    key = ti.Key(1, "lstm.weight_ih_l0")
    assert key.child("i").words == _v1_words(1, "lstm.weight_ih_l0#i")
    assert key.child("f").child("values").words == _v1_words(1, "lstm.weight_ih_l0#f#values")
    assert ti.Key(1, "w").child("f").words == (285425635, 1673563860)


def test_block_keys_cannot_collide_with_parameter_names():
    block = ti.Key(1, "weight_ih_l0").child("i")
    named = ti.Key(1, "weight_ih_l0#i")
    assert block != named and block.words != named.words
    assert named.words == (3309729999, 3055745699)
    assert ti.Key(1, "a#b").child("c").words != ti.Key(1, "a").child("b#c").words
    # The sampler: block i of a fused LSTM weight vs a parameter literally named "w#i".
    fans = ti.fans(nn.LSTM(3, 4), "weight_ih_l0")
    fused = ti.Orthogonal().sample((16, 3), ti.Key(0, "w"), fans)
    plain = ti.Orthogonal().sample((4, 3), ti.Key(0, "w#i"))
    assert not torch.equal(fused[:4], plain)


def test_any_int_is_a_seed():
    with fast_and_small():
        huge = ti.Key(10**5000, "x")
        assert huge.words == (3220850758, 198498823)
        assert huge.words != ti.Key(10**5000 + 1, "x").words != ti.Key(-(10**5000), "x").words
        assert "<int of about 5000 digits>" in repr(huge)
        values = ti.Normal().sample((3,), huge)
        assert torch.isfinite(values).all()
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)  # the smallest limit Python allows
    try:
        assert ti.Key(2**2048 - 1, "w").words == _v1_words(2**2048 - 1, "w")
        assert ti.Key(2**5000, "w").words
    finally:
        sys.set_int_max_str_digits(limit)


def test_keys_round_trip_as_lists():
    key = ti.Key(3, "a").child("f")
    assert ti.Key(*[3, "a"]) == ti.Key(3, "a")
    assert ti.Key(*json.loads(json.dumps([key.seed, key.path, list(key.block)]))) == key
    with pytest.raises(InitializerError, match="block"):
        ti.Key(3, "a", "f")  # type: ignore[arg-type]
    model = nn.Sequential(nn.LSTM(3, 4))
    manifest = ti.presets.get("torch").explain(model)
    assert ti.Manifest.from_json(manifest.to_json()).digest() == manifest.digest()


# -- IDX data files ----------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """Counts the bytes a reader pulls out of a stream."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.stream, self.pulled = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.pulled += len(data)
        return data

    def close(self) -> None:
        self.stream.close()


def test_idx_gzip_bomb_fails_after_reading_the_claimed_size(tmp_path, monkeypatch):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:  # header: 1x28x28; body: 192 MiB
        out.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 1, 28, 28))
        zeros = bytes(1 << 20)
        for _ in range(192):
            out.write(zeros)
    assert path.stat().st_size < 200 * 1024
    readers: list[_CountingReader] = []
    real_open = idx._open

    def counting_open(p):  # type: ignore[no-untyped-def]
        readers.append(_CountingReader(real_open(p)))
        return readers[-1]

    monkeypatch.setattr(idx, "_open", counting_open)
    with fast_and_small(megabytes=10), pytest.raises(ConfigError) as err:
        idx.read_idx(path, 3)
    assert "(1, 28, 28)" in str(err.value) and "more than 800 bytes" in str(err.value)
    assert readers[0].pulled == 16 + 784 + 1  # the header, the claimed body, one byte more


def test_idx_reader_streams_raw_files_too(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes(10))
    with pytest.raises(ConfigError, match=r"shape \(3,\).*more than 11 bytes"):
        idx.read_idx(path, 1)
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"\x01\x02\x03")
    assert idx.read_idx(path, 1).tolist() == [1, 2, 3]


# -- command line ------------------------------------------------------------------------------
def test_inspect_with_a_bad_input_shape_is_a_usage_error():
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["inspect", "mlp", "--input-shape", "abc"])
    assert code == 2
    lines = stderr.getvalue().strip().splitlines()
    assert len(lines) == 1 and "--input-shape 'abc'" in lines[0] and "64,1,28,28" in lines[0]
