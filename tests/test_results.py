"""The results folder: results.json, the CSVs agreeing with it, figures drawn from it alone,
several models in one document, allocation methods side by side, separate image sources."""

from __future__ import annotations

import csv
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from cr2des.cli import main
from cr2des.report.headline import answer_table, print_answer
from cr2des.report.plots import plot_file
from cr2des.results import record as results

from .conftest import ROOT

TINY = ["--arch", "tiny", "--sl", "2", "--st", "2"]


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG, after checking its signature, its chunks' CRCs and that it
    ends with IEND (a truncated or corrupted file fails)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, texts, chunks = 8, {}, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    return texts


def labels(path: Path) -> list[dict[str, str]]:
    return json.loads(png_text(path)["Description"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    # MODEL.md's byte knapsack, so that the curve's exact properties below hold; every
    # method (the time-aware default too) is compared beside it
    assert main(["run", "tiny", *TINY, "--alloc", "exact", "--out", str(out),
                 "--compare-alloc", "--trace"]) == 0
    return out


def test_folder_holds_every_output_and_no_temporaries(folder):
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([
        "results.json", "schemes.csv", "layers.csv", "trace.json", "ipr-hit-rate.png",
        "tiny-layer-time.png", "tiny-layer-energy.png", "tiny-ou-paths.png",
        "tiny-alloc-bytes.png", "tiny-area-energy.png"])
    doc = json.loads((folder / "results.json").read_text())
    assert doc["schema_version"] == results.RESULTS_SCHEMA_VERSION
    assert doc["sim"]["trace"]["path"] == str(folder / "trace.json")
    assert json.loads((folder / "trace.json").read_text())["traceEvents"]


def test_figures_are_pngs_with_their_axes_labels(folder):
    expected = {
        "tiny-layer-time.png": [("crossbar layer (index in network order)",
                                 "busy time per image and replica (s)")],
        "tiny-ou-paths.png": [("scheme", "column activations (OU column x cycle)")],
        "tiny-alloc-bytes.png": [("crossbar layer (index in network order)",
                                  "pattern-buffer bytes")],
        "tiny-area-energy.png": [("scheme", "area (mm²)"),
                                 ("scheme", "energy per inference (J)")],
        "tiny-layer-energy.png": [("crossbar layer (index in network order)",
                                   "energy per inference (J)")],
        "ipr-hit-rate.png": [("total pattern-buffer capacity (bytes)",
                              "IPR hit rate (of non-zero OU input patterns)")],
    }
    for name, axes in expected.items():
        assert [(a["xlabel"], a["ylabel"]) for a in labels(folder / name)] == axes, name
    import matplotlib.image

    image = matplotlib.image.imread(folder / "tiny-ou-paths.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # something was drawn


def test_plot_redraws_every_figure_from_the_json_alone(folder, tmp_path, capsys):
    redrawn = tmp_path / "again"
    copy = tmp_path / "results.json"
    copy.write_text((folder / "results.json").read_text())  # nothing else next to it
    assert main(["plot", str(copy), "--out", str(redrawn)]) == 0
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert sorted(p.name for p in redrawn.iterdir()) == pngs
    for name in pngs:
        assert labels(redrawn / name) == labels(folder / name)


def test_a_figure_without_its_data_is_skipped_with_the_reason(folder, tmp_path, capsys):
    record = _record(folder)
    for layer in record["layers"]:
        layer.pop("energy_j")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record))
    assert main(["plot", str(path)]) == 0
    assert "layer-energy" in capsys.readouterr().out  # says which figure it could not draw
    assert not (tmp_path / "tiny-layer-energy.png").exists()


def _number(cell: str) -> object:
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell


def test_schemes_csv_agrees_with_the_json(folder):
    doc = json.loads((folder / "results.json").read_text())
    with open(folder / "schemes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["scheme"] for r in rows] == list(doc["schemes"])
    for row in rows:
        entry = results.flatten(doc["schemes"][row["scheme"]])
        assert row["model"] == "tiny" and row["arch"] == "tiny"
        for key, value in entry.items():
            assert _number(row[key]) == value, (row["scheme"], key)
    # every scalar is a column: the simulated and the closed-form timing, the counts
    for key in ("latency_s", "throughput_ips", "makespan_s", "ou_computes", "columns.served",
                "analytic.bottleneck_stage", "stalls.ADC busy", "speedup"):
        assert key in rows[0], key


def test_layers_csv_agrees_with_the_json(folder):
    doc = json.loads((folder / "results.json").read_text())
    with open(folder / "layers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    schemes = list(doc["schemes"])
    assert len(rows) == len(doc["layers"]) * len(schemes)
    for row in rows:
        layer = doc["layers"][int(row["index"])]
        scheme = row["scheme"]
        assert row["layer"] == layer["name"]
        assert int(row["ou_computes"]) == layer["schemes"][scheme]["ou_computes"]
        assert int(row["crossbars"]) == layer["crossbars"][scheme]
        assert float(row["time_s"]) == layer["time_s"][scheme]
        assert float(row["hit_rate_test"]) == layer["hit_rate_test"]
        assert int(row["buffer_bytes"]) == doc["alloc"]["bytes_per_layer"][layer["name"]]
        assert int(row["buffer_bytes.uniform"]) == (
            doc["alloc_methods"]["uniform"]["bytes_per_layer"][layer["name"]])
    # per-layer counts add up to the scheme totals of the JSON
    for scheme in schemes:
        total = sum(int(r["ou_computes"]) for r in rows if r["scheme"] == scheme)
        assert total == doc["schemes"][scheme]["ou_computes"]


def test_layer_times_are_the_simulated_busy_times(folder):
    """A replica is busy at most the whole run, so a layer's busy time per image and replica
    is at most the makespan per image; every crossbar layer of the run was busy."""
    doc = json.loads((folder / "results.json").read_text())
    for scheme, entry in doc["schemes"].items():
        times = [layer["time_s"][scheme] for layer in doc["layers"]]
        assert all(t > 0 for t in times), scheme
        images = len(doc["images"]["test"]["names"])
        assert max(times) <= entry["makespan_s"] / images * (1 + 1e-9), scheme
    # the closed form's bottleneck is the layer with the largest closed-form time; the
    # simulated busiest layer of cr2 takes at least the closed-form bottleneck's time share
    cr2 = doc["schemes"]["cr2"]
    assert max(layer["time_s"]["cr2"] for layer in doc["layers"]) >= (
        cr2["analytic"]["bottleneck_s"] * (1 - 1e-9))


def test_ipr_curve_matches_the_study_at_its_capacity(folder):
    doc = json.loads((folder / "results.json").read_text())
    curve = doc["ipr_curve"]
    capacity = doc["alloc"]["capacity_bytes"]
    at = curve["capacity_bytes"].index(capacity)
    assert curve["hit_rate_learn"][at] == pytest.approx(doc["ipr"]["hit_rate_learn"], abs=0)
    assert curve["capacity_bytes"][0] == 0 and curve["hit_rate_learn"][0] == 0
    assert all(u <= c for u, c in zip(curve["used_bytes"], curve["capacity_bytes"],
                                      strict=True))
    # enough bytes for every entry: every entry with a value is held
    assert curve["capacity_bytes"][-1] >= curve["bytes_for_all_entries"]
    assert curve["hit_rate_learn"][-1] == max(curve["hit_rate_learn"]) > 0.9
    # the testing images' rate from their histogram equals the testing run's buffer lookups
    assert curve["hit_rate_test"][at] == doc["ipr"]["hit_rate_test"] > 0
    assert curve["hit_rate_test"][0] == 0
    tested = {t["method"]: t for t in curve["tested"]}
    assert tested["exact"]["hit_rate_test"] == doc["ipr"]["hit_rate_test"]
    assert set(tested) == {"time", "exact", "uniform", "proportional", "greedy"}


def test_compare_alloc_equals_running_each_method(folder, capsys):
    """An alternative of --compare-alloc is the study that --alloc METHOD runs."""
    doc = json.loads((folder / "results.json").read_text())
    assert main(["run", "tiny", *TINY, "--alloc", "uniform", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    side = doc["alloc_compare"]["uniform"]
    assert side["bytes_per_layer"] == alone["alloc"]["bytes_per_layer"]
    assert side["hit_rate_test"] == alone["ipr"]["hit_rate_test"]
    assert side["cr2"]["ou_computes"] == alone["schemes"]["cr2"]["ou_computes"]
    assert side["cr2"]["latency_s"] == alone["schemes"]["cr2"]["latency_s"]
    for method, entry in doc["alloc_methods"].items():  # from the tables, without a test run
        assert entry["bytes_per_layer"] == doc["alloc_compare"][method]["bytes_per_layer"]
        assert entry["hit_rate_learn"] == doc["alloc_compare"][method]["hit_rate_learn"]
        assert entry["hit_rate_test"] == doc["alloc_compare"][method]["hit_rate_test"]
    run = doc["alloc_compare"]["exact"]
    assert run["cr2"]["latency_s"] == doc["schemes"]["cr2"]["latency_s"]
    assert list(doc["alloc_compare"]) == ["time", "exact", "uniform", "proportional", "greedy"]


def test_learning_and_testing_images_from_different_sources(tmp_path, capsys):
    from skimage import data

    from cr2des.data.images import _to_rgb

    def square(image):
        image = _to_rgb(image, "x")
        side = min(image.shape[:2])
        return image[:side, :side][:256, :256]

    learn = tmp_path / "learn.npy"
    test = tmp_path / "test.npy"
    np.save(learn, np.stack([square(data.astronaut()), square(data.chelsea())]))
    np.save(test, np.stack([square(data.coffee()), square(data.rocket())]))
    assert main(["run", "tiny", *TINY, "--learn-images", str(learn), "--test-images", str(test),
                 "--engine", "analytic", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["images"]["learn"]["source"] == str(learn)
    assert doc["images"]["test"]["source"] == str(test)
    assert len(doc["images"]["learn"]["names"]) == len(doc["images"]["test"]["names"]) == 2
    assert 0 < doc["ipr"]["hit_rate_learn"] <= 1 and 0 <= doc["ipr"]["hit_rate_test"] <= 1
    # the same source for both is split into disjoint sets, as --images is
    assert main(["run", "tiny", *TINY, "--learn-images", str(learn), "--test-images",
                 str(learn), "--engine", "analytic", "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert not set(same["images"]["learn"]["names"]) & set(same["images"]["test"]["names"])
    assert main(["run", "tiny", *TINY, "--learn-images", str(learn), "--test-images", str(test),
                 "--engine", "analytic"]) == 0
    out = capsys.readouterr().out
    assert f"learned on 2 images from {learn}" in out and f"tested on 2 images from {test}" in out


def test_several_models_one_document_one_summary_row_each(tmp_path, capsys):
    other = yaml.safe_load((ROOT / "workloads" / "tiny.yaml").read_text())
    other["name"] = "tiny_b"
    path = tmp_path / "tiny_b.yaml"
    path.write_text(yaml.safe_dump(other))
    out = tmp_path / "out"
    assert main(["run", "tiny", str(path), *TINY, "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "Summary: cr2 against dense, one row per model" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema_version"] == results.RESULTS_SCHEMA_VERSION
    assert [m["workload"]["name"] for m in doc["models"]] == ["tiny", "tiny_b"]
    assert [row["model"] for row in doc["summary"]] == ["tiny", "tiny_b"]
    with open(out / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert [row["model"] for row in summary] == ["tiny", "tiny_b"]
    for row, record in zip(summary, doc["models"], strict=True):
        assert float(row["cr2_speedup"]) == record["schemes"]["cr2"]["speedup"]
    with open(out / "schemes.csv", newline="") as handle:
        assert [r["model"] for r in csv.DictReader(handle)] == ["tiny"] * 4 + ["tiny_b"] * 4
    assert not list(out.glob("*.png"))
    written, _ = plot_file(out / "results.json")
    assert {p.name for p in written} >= {"tiny-ou-paths.png", "tiny_b-ou-paths.png",
                                         "ipr-hit-rate.png"}
    assert len(labels(out / "ipr-hit-rate.png")) == 1  # both models on one axes


def test_all_is_the_papers_four_models():
    assert results.expand_models(["all"]) == ["alexnet", "vgg16", "resnet50", "googlenet"]
    assert results.expand_models(["resnet50", "all", "tiny"]) == [
        "resnet50", "alexnet", "vgg16", "googlenet", "tiny"]


def _record(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def render(table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


ENERGY_FIELDS = ("energy_j", "energy_saving", "area_mm2", "chip_area_mm2", "bottleneck")


def test_headline_degrades_clearly_and_uses_energy_when_present(folder):
    record = _record(folder)
    for entry in record["schemes"].values():
        for key in ENERGY_FIELDS:
            entry.pop(key, None)
    text = render(answer_table(record))
    assert "SYNTHETIC WEIGHTS" in text
    assert text.count(results.NOT_COMPUTED) >= 8  # energy and saving of four schemes
    for scheme, joules in zip(record["schemes"], (4e-6, 2e-6, 1.6e-6, 1e-6), strict=True):
        record["schemes"][scheme].update(
            energy_j=joules, chip_area_mm2=2.5,
            bottleneck={"stage": "conv2", "cause": "ADC busy"})
    text = render(answer_table(record))
    assert results.NOT_COMPUTED not in text
    assert "4.00x" in text and "conv2: ADC busy" in text and "2.5 mm²" in text
    rows = results.scheme_rows(record)
    assert [r["energy_j"] for r in rows] == [4e-6, 2e-6, 1.6e-6, 1e-6]
    assert rows[0]["bottleneck.cause"] == "ADC busy"  # new fields become columns


def test_an_imprecise_throughput_is_marked_wherever_it_is_shown(folder):
    """The headline, the energy table (whose power and leakage use the throughput) and the
    models' summary give the precision of a stream that stopped on its budget, and say
    nothing of one measured to its tolerance."""
    from cr2des.report.headline import print_models_summary
    from cr2des.report.tables import print_energy

    record = _record(folder)
    schemes = record["schemes"]
    for entry in schemes.values():
        entry["steady"].update(streamed=True, converged=True, precision=0.01)
    schemes["wpr"]["steady"].update(converged=False, precision=0.4)
    schemes["cr2"]["steady"].update(converged=False, precision=None)
    console = Console(width=250, record=True)
    print_answer(record, console)
    print_energy(record, console)
    print_models_summary(results.summary_rows([record, record]), console)
    text = console.export_text()
    wpr = f"{schemes['wpr']['throughput_ips']:,.1f}"
    cr2 = f"{schemes['cr2']['throughput_ips']:,.1f}"
    dense = f"{schemes['dense']['throughput_ips']:,.1f}"
    assert text.count(f"{wpr} img/s ±40%") == 1 and text.count(f"{wpr} ±40%") == 1
    assert text.count(f"{cr2} img/s ±?") == 3  # the headline and the two summary rows
    assert text.count(f"{cr2} ±?") == 1
    assert f"{dense} ±" not in text and f"{dense} img/s ±" not in text
    assert text.count("±: a throughput whose stream stopped on its budget") == 3
    for entry in schemes.values():
        entry["steady"].update(converged=True, precision=0.01)
    console = Console(width=250, record=True)
    print_answer(record, console)
    print_energy(record, console)
    assert "±" not in console.export_text()


def test_a_precision_keeps_two_digits_below_ten_percent():
    from cr2des.report.headline import imprecision

    def shown(precision):
        return imprecision({"streamed": True, "converged": False, "precision": precision})

    assert [shown(p) for p in (1.32, 0.4, 0.0709, 0.004)] == [" ±132%", " ±40%", " ±7.1%",
                                                               " ±0.4%"]
    assert shown(None) == " ±?"
    assert imprecision({"streamed": True, "converged": True, "precision": 0.004}) == ""
    assert imprecision({"streamed": False, "converged": False, "precision": 0.4}) == ""


def test_headline_says_what_was_learned_and_tested(folder):
    console = Console(width=250, record=True)
    print_answer(_record(folder), console)
    text = console.export_text()
    assert text.startswith("warning: synthetic weights")
    assert "learned on 2 images from samples (IPR hit rate" in text
    assert "tested on 2 images from samples" in text and "coffee, rocket" in text
    assert "IPR allocation methods on the same learned tables" in text


def test_figures_use_per_scheme_energy_when_present(folder, tmp_path):
    record = _record(folder)
    for i, entry in enumerate(record["schemes"].values()):
        entry["energy_by_component_j"] = {"crossbar": 1e-6 / (i + 1), "adc": 2e-6 / (i + 1)}
    for layer in record["layers"]:
        layer["energy_j"] = {s: 1e-7 for s in record["schemes"]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record))
    _, skipped = plot_file(path)
    assert not skipped
    assert [a["ylabel"] for a in labels(tmp_path / "tiny-layer-energy.png")] == [
        "energy per inference (J)"]
    _, energy = labels(tmp_path / "tiny-area-energy.png")
    assert energy["xlabel"] == "scheme" and energy["title"] == "energy by component"


@pytest.mark.parametrize(("content", "message"), [
    ("{", "cannot read results"),
    ('{"schemes": {}}', "no schema_version"),
    ('{"schema_version": 99, "schemes": {}, "layers": []}', "schema_version 99"),
])
def test_plot_of_a_bad_file_exit_2(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    result = subprocess.run([sys.executable, "-m", "cr2des", "plot", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr
    assert message in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_trace_without_a_path_needs_an_output_folder():
    result = subprocess.run([sys.executable, "-m", "cr2des", "run", "tiny", *TINY, "--trace"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr == ("cr2des: error: --trace without a path writes trace.json into "
                             "--out DIR; give one\n")


def test_analytic_run_writes_what_it_can_and_says_what_it_skipped(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "tiny", *TINY, "--engine", "analytic", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tiny-layer-time.png: per-layer time: the record has no simulated time" in printed
    assert not (out / "tiny-layer-time.png").exists() and (out / "tiny-ou-paths.png").exists()
    doc = json.loads((out / "results.json").read_text())
    assert "latency_s" not in doc["schemes"]["cr2"] and "time_s" not in doc["layers"][0]
    assert results.NOT_COMPUTED in render(answer_table(doc))


def test_figures_without_matplotlib_fail_before_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    out = tmp_path / "out"
    assert main(["run", "tiny", *TINY, "--out", str(out)]) == 2
    assert "figures need matplotlib" in capsys.readouterr().err
    assert not out.exists()
    assert main(["run", "tiny", *TINY, "--engine", "analytic", "--out", str(out),
                 "--no-plots"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["layers.csv", "results.json",
                                                     "schemes.csv"]


def test_piped_run_shows_no_progress(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cr2des", "run", "tiny", *TINY, "--engine",
                             "analytic"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_run_on_a_terminal_shows_progress():
    import os
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "cr2des", "run", "tiny", *TINY],
                               stdout=subprocess.PIPE, stderr=slave, cwd=ROOT,
                               env=dict(os.environ, TERM="xterm", COLUMNS="120"))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    process.communicate(timeout=120)
    shown = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0
    assert any(phase in shown for phase in ("reference SL", "learn", "test", "simulate",
                                            "results"))


def test_counts_in_finds_pairs_of_wide_keys():
    from cr2des.compression.patterns import PatternCounts

    top = np.uint64(2**64 - 1)
    histogram = PatternCounts(3, np.array([0, 0, 1, 2]), np.array([5, top, 5, 7], np.uint64),
                              np.array([4, 3, 2, 1]))
    band = np.array([0, 1, 1, 2, 2])
    key = np.array([top, 5, top, 7, 6], np.uint64)
    assert results.counts_in(band, key, histogram).tolist() == [3, 2, 0, 1, 0]
    assert results.counts_in(band[:0], key[:0], histogram).tolist() == []


def test_csv_cells_round_trip_floats():
    text = results.csv_text([{"a": 0.1 + 0.2, "b": None, "c": math.inf}, {"d": 1}])
    rows = list(csv.DictReader(text.splitlines()))
    assert float(rows[0]["a"]) == 0.1 + 0.2 and rows[0]["b"] == "" and rows[0]["c"] == "inf"
    assert rows[1] == {"a": "", "b": "", "c": "", "d": "1"}
