"""The pieces behind the corpus: strict JSON, paired atomic writes, output checks, and the
documented limits (docs/robustness.md) matching the code."""

from __future__ import annotations

import json
import math
import os
import re

import pytest

from cr2des import cli, fileio
from cr2des.data import budget, images, pth
from cr2des.description import schema, spec, units
from cr2des.errors import OutputError
from cr2des.workloads import graph as workload
from cr2des.workloads.load import load_workload

from .cases import ROOT


def test_json_output_is_strict_with_null_and_reason(capsys):
    cli._print_json({"a": 1.0, "b": {"speedup": math.nan}, "c": [math.inf, 2]})
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["b"]["speedup"] is None and data["c"] == [None, 2]
    assert data["non_finite"] == ["b.speedup: nan", "c[0]: inf"]


def test_paired_write_restores_both_when_the_second_rename_fails(tmp_path, monkeypatch):
    first, second = tmp_path / "w.npz", tmp_path / "w.yaml"
    first.write_text("old npz")
    second.write_text("old yaml")
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst) == str(second):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError), fileio.atomic_paths(first, second) as (a, b):
        a.write_text("new npz")
        b.write_text("new yaml")
    monkeypatch.undo()
    assert first.read_text() == "old npz" and second.read_text() == "old yaml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz", "w.yaml"]


def test_paired_write_replaces_both(tmp_path):
    first, second = tmp_path / "w.npz", tmp_path / "w.yaml"
    first.write_text("old")
    with fileio.atomic_paths(first, second) as (a, b):
        a.write_text("1")
        b.write_text("2")
    assert (first.read_text(), second.read_text()) == ("1", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz", "w.yaml"]


def test_check_output_accepts_a_new_or_regular_file(tmp_path):
    assert fileio.check_output(tmp_path / "new.json", option="--x") == tmp_path / "new.json"
    (tmp_path / "old.json").write_text("{}")
    fileio.check_output(tmp_path / "old.json", option="--x")
    with pytest.raises(OutputError, match="--x: is also an input"):
        fileio.check_output(tmp_path / "old.json", option="--x",
                            inputs=[str(tmp_path / "." / "old.json")])


@pytest.mark.parametrize(("text", "value"), [
    ("`cr2des.data.pth.MAX_ELEMENTS`", pth.MAX_ELEMENTS == 2**31),
    ("64 MiB (`MAX_PICKLE_BYTES`)", pth.MAX_PICKLE_BYTES == 64 * 2**20),
    ("`cr2des.description.units.MAX_BYTES` = 2**50", units.MAX_BYTES == 2**50),
    ("16,777,216 (2**24", schema.INT_CEILING == 16_777_216),
    ("1e12 in magnitude", schema.FLOAT_CEILING == 1e12),
    ("65,536 routers", spec.MAX_ROUTERS == 65_536),
    ("65,536 tiles (`MAX_TILES`)", spec.MAX_TILES == 65_536),
    ("1,024 PEs per tile (`MAX_PES`)", spec.MAX_PES == 1024),
    ("65,536 units of any\n  component (`count`, `MAX_UNITS`)", spec.MAX_UNITS == 65_536),
    ("1,024 ports per memory (`MAX_PORTS`)", spec.MAX_PORTS == 1024),
    ("at most 16,384", workload.MAX_INPUT_DIM == 16_384),
    ("2**28 elements per", workload.MAX_TENSOR_ELEMENTS == 2**28),
    ("deeper than 64 levels", schema.MAX_YAML_DEPTH == 64),
    ("more than 1,000,000 values", schema.MAX_YAML_NODES == 1_000_000),
    ("cut to 80 characters", schema.MAX_SHOWN == 80),
    ("an error line to 2,000", cli.MAX_ERROR_CHARS == 2000),
    ("[1, 10000] (`cr2des.cli.MAX_IMAGES`)", cli.MAX_IMAGES == 10_000),
    ("above 40 megapixels", images.MAX_IMAGE_PIXELS == 40_000_000),
])
def test_documented_limits_match_the_code(text, value):
    assert text in (ROOT / "docs" / "robustness.md").read_text()
    assert value


def test_memory_estimate_counts_kept_inputs_and_activations():
    tiny = load_workload("tiny")
    one, two = budget.estimate_bytes(tiny, 1), budget.estimate_bytes(tiny, 2)
    kept = sum(math.prod(layer.in_shapes[0]) for layer in tiny.crossbar_layers)
    peak = max(math.prod(layer.shape) for layer in tiny)
    assert two - one == kept + 4 * (3 * max(peak, 3 * 16 * 16) + 3 * 16 * 16)
    assert budget.available_bytes() is None or budget.available_bytes() > 0


def test_help_states_the_image_maxima(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert re.search(r"at most\s+10,000", capsys.readouterr().out)
