"""The documentation stays in step with the code."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from cr2des.description import spec
from cr2des.description.schema import yaml_key

from .conftest import ROOT


def description_keys(cls: type) -> set[str]:
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "source":
            continue
        keys.add(yaml_key(f))
        options = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        inner = options[0] if options else hints[f.name]
        if dataclasses.is_dataclass(inner):
            keys |= description_keys(inner)  # type: ignore[arg-type]
    return keys


def test_every_architecture_key_is_documented():
    text = (ROOT / "docs" / "architecture.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", text))
    missing = description_keys(spec.Arch) - documented
    assert not missing, f"keys missing from docs/architecture.md: {sorted(missing)}"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / target).exists(), target


# ----------------------------------------------------------------------------- reference
def test_reference_is_what_the_spec_generates():
    from cr2des.description.specdoc import reference_markdown

    text = (ROOT / "docs" / "reference.md").read_text()
    assert text == reference_markdown(), (
        "docs/reference.md is out of date: python -m cr2des.description.specdoc docs/reference.md")


def test_reference_lists_every_key_with_its_default_and_source():
    from cr2des.description.specdoc import keys, yaml_sources

    listed = {k.path.rsplit(".", 1)[-1] for k in keys() if not k.section}
    assert description_keys(spec.Arch) - {k.path.rsplit(".", 1)[-1] for k in keys()} == set()
    assert {"ou_rows", "read_latency", "psum_bits", "link_width"} <= listed
    by_path = {k.path: k for k in keys()}
    # nested defaults are those of the parent's default instance, in SI units
    assert by_path["chip.tile.pe.crossbar.count"].default == "8"
    assert by_path["chip.tile.pe.crossbar.read_latency"].default == "100 ns"
    assert by_path["chip.tile.pe.crossbar.read_latency"].unit == "s"
    assert by_path["chip.tiles"].default == "required"
    sources = yaml_sources(spec.ARCH_DIR / "cr2.yaml")
    assert sources["chip.tile.pe.adc.bits"] == (
        "5", "ceil(log2(8 x 3 x 1 + 1)) = 5 for an 8-row OU")
    value, comment = sources["chip.io.power"]  # inherits the component's comment
    assert value == "2.6W" and comment.startswith("ISAAC table: HyperTransport")
    value, comment = sources["chip.tile.pe.crossbar.read_latency"]  # continued on a 2nd line
    assert comment.endswith("an 8-column OU needs 8 (6.25 ns)")


# ----------------------------------------------------------------------------- results.md
def _documented(path: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", (ROOT / "docs" / path).read_text()))


def test_results_schema_documents_every_field(tmp_path, capsys):
    import json

    from cr2des.cli import main

    assert main(["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--compare-alloc",
                 "uniform", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    documented = _documented("results.md")
    scheme = record["schemes"]["cr2"]
    groups = {
        "record": record, "scheme": scheme, "layer": record["layers"][0],
        "analytic": scheme["analytic"], "columns": scheme["columns"],
        "ipr_curve": record["ipr_curve"], "alloc": record["alloc"],
        "alloc_compare": record["alloc_compare"]["uniform"],
        "alloc_compare.cr2": record["alloc_compare"]["uniform"]["cr2"],
        "alloc_methods": record["alloc_methods"]["greedy"],
        "area_power": record["area_power"], "sim": record["sim"],
    }
    for group, entry in groups.items():
        missing = set(entry) - documented
        assert not missing, f"docs/results.md lacks {group} fields {sorted(missing)}"


# ----------------------------------------------------------------------------- tutorial
_FULL_NETWORKS = re.compile(r"\b(alexnet|vgg16|resnet50|googlenet|all)\b")


def tutorial_blocks() -> list[str]:
    text = (ROOT / "docs" / "tutorial.md").read_text()
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def _run_blocks(blocks: list[str], cwd) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               MPLBACKEND="Agg")
    for block in blocks:
        result = subprocess.run(["bash", "-e", "-c", block], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"tutorial block failed:\n{block}\n{result.stderr}"


def test_tutorial_commands_run(tmp_path):
    """Every ``sh`` block of docs/tutorial.md on small networks, in order, in an empty
    folder (those on the paper's networks run in the slow test below)."""
    blocks = [b for b in tutorial_blocks() if not _FULL_NETWORKS.search(b)]
    assert len(blocks) >= 3
    _run_blocks(blocks, tmp_path)
    for name in ("results.json", "schemes.csv", "layers.csv", "ipr-hit-rate.png"):
        assert (tmp_path / "out" / "tiny" / name).is_file(), name
    assert (tmp_path / "out" / "tiny-alloc" / "results.json").is_file()
    assert len(list((tmp_path / "images" / "grey").iterdir())) == 3


@pytest.mark.slow
def test_tutorial_full_study_writes_the_files_it_lists(tmp_path):
    blocks = [b for b in tutorial_blocks() if _FULL_NETWORKS.search(b)]
    assert blocks == ["cr2des run resnet50 --out out/resnet50\n"]
    _run_blocks(blocks, tmp_path)
    text = (ROOT / "docs" / "tutorial.md").read_text()
    table = text[text.index("The folder `out/resnet50/` holds:"):]
    table = table[:table.index("\n\n", table.index("|"))]
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.M))
    assert listed == {p.name for p in (tmp_path / "out" / "resnet50").iterdir()}


def test_make_run_writes_the_results_folder_to_out():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^OUT \?= out$", makefile, flags=re.M)
    assert re.search(r"^\t\$\(BIN\)/cr2des run \$\(RUN_ARGS\) --out \$\(OUT\)$", makefile,
                     flags=re.M)
    assert re.search(r"^RUN_ARGS \?= resnet50$", makefile, flags=re.M)
    assert "out/" in (ROOT / ".gitignore").read_text().split()


# ----------------------------------------------------------------------------- README
def _readme_row(first_cell: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^\| {re.escape(first_cell)} \|(.*)\|$", text, flags=re.M)
    assert match, first_cell
    return match.group(1)


def test_readme_architecture_statements_match_the_files():
    from cr2des.costs.area_power import area_power
    from cr2des.description.spec import load_arch

    tiny = load_arch("tiny")
    row = _readme_row("`tiny.yaml`")
    tiles, pes, xbars, rows, cols, ou_r, ou_c, mesh_x, mesh_y = map(int, re.search(
        r"(\d+) tiles of (\d+) PEs x (\d+) crossbars of (\d+)x(\d+) cells in (\d+)x(\d+) OUs, "
        r"on a (\d+)x(\d+) mesh", row).groups())
    xb = tiny.crossbar
    assert (tiles, pes, xbars) == (tiny.chip.tiles, tiny.chip.tile.pes, xb.count)
    assert (rows, cols, ou_r, ou_c) == (xb.rows, xb.cols, xb.ou_rows, xb.ou_cols)
    assert tiny.chip.network.topology == "mesh" and (mesh_x, mesh_y) == tiny.chip.network.dims

    cr2 = load_arch("cr2")
    row = _readme_row("`cr2.yaml`")
    ou_r, ou_c, adc, kib = map(int, re.search(
        r"(\d+)x(\d+) OUs with (\d+)-bit ADCs, a WPR index and a (\d+) KiB IPR pattern buffer "
        r"per tile", row).groups())
    assert (ou_r, ou_c, adc) == (cr2.crossbar.ou_rows, cr2.crossbar.ou_cols,
                                 cr2.chip.tile.pe.adc.bits)
    pb = cr2.chip.tile.pattern_buffer
    assert cr2.chip.tile.wpr_index is not None and pb is not None
    assert kib * 1024 == pb.capacity_bytes * pb.count

    ap = area_power(load_arch("isaac"))
    row = _readme_row("`isaac.yaml`")
    tile_mw, tile_mm2, chip_w, chip_mm2 = map(float, re.search(
        r"tile ([\d.]+) mW / ([\d.]+) mm², chip ([\d.]+) W / ([\d.]+) mm²", row).groups())
    assert round(ap.tile.power_w * 1e3) == tile_mw and round(ap.tile.area_mm2, 3) == tile_mm2
    assert round(ap.chip.power_w, 1) == chip_w and round(ap.chip.area_mm2, 1) == chip_mm2


@pytest.mark.parametrize("model", ["alexnet", "vgg16", "resnet50", "googlenet"])
def test_readme_workload_table_matches_the_zoo(model):
    from cr2des.workloads.load import load_workload

    row = _readme_row(f"`{model}`")
    macs_text, weights_text = re.search(r"([\d.]+) G \| ([\d.]+) M", row).groups()
    workload = load_workload(model)
    digits = len(macs_text.split(".")[1])
    assert round(workload.total_macs / 1e9, digits) == float(macs_text)
    weights = float(weights_text)
    assert round(workload.total_weights / 1e6, 1) == weights
