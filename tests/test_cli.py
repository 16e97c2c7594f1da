"""The command line: JSON outputs, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cr2des.cli import main

from .conftest import ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cr2des", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_area_power_json_reproduces_isaac(capsys):
    assert main(["area-power", str(ROOT / "arch" / "isaac.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tile"]["power_w"] == pytest.approx(0.330, rel=0.01)
    assert data["tile"]["area_mm2"] == pytest.approx(0.372, rel=0.01)
    assert data["chip"]["power_w"] == pytest.approx(65.8, rel=0.01)
    assert data["chip"]["area_mm2"] == pytest.approx(85.4, rel=0.01)
    names = {(c["level"], c["name"]) for c in data["components"]}
    assert {("pe", "adc"), ("tile", "edram"), ("tile", "router"), ("chip", "io")} <= names


def test_area_power_table(capsys):
    assert main(["area-power", "isaac"]) == 0
    out = capsys.readouterr().out
    assert "65.81 W" in out and "329.8 mW" in out


def test_workload_json(capsys):
    assert main(["workload", "resnet50", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_macs"] == pytest.approx(4.09e9, rel=0.005)
    assert data["total_weights"] > 25e6
    conv1 = data["layers"][0]
    assert conv1["name"] == "conv1" and conv1["out_shape"] == [64, 112, 112]
    assert conv1["matrix"] == [147, 64]


def test_workload_table(capsys):
    assert main(["workload", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "140,368" in out and "branch_b" in out


def test_run_json_has_the_study_keys(capsys):
    assert main(["run", "tiny", "--arch", "tiny", "--sl", "2", "--st", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for scheme in ("dense", "sparse", "wpr", "cr2"):
        entry = data["schemes"][scheme]
        for key in ("crossbars", "ou_computes", "wpr_copies", "buffer_reads", "skipped"):
            assert isinstance(entry[key], int), (scheme, key)
    assert 0 <= data["ipr"]["hit_rate_learn"] <= 1 and 0 <= data["ipr"]["hit_rate_test"] <= 1
    alloc = data["alloc"]
    assert alloc["method"] == "time" and alloc["capacity_bytes"] == 16 * 64
    assert sum(alloc["bytes_per_layer"].values()) <= alloc["capacity_bytes"]
    assert data["images"]["learn"]["names"] == ["astronaut", "chelsea"]
    assert data["images"]["test"]["names"] == ["coffee", "rocket"]
    assert data["weights"]["synthetic"] is True
    for scheme in ("dense", "sparse", "wpr", "cr2"):
        entry = data["schemes"][scheme]
        assert entry["latency_s"] > 0 and entry["throughput_ips"] > 0
        assert entry["makespan_s"] >= entry["latency_s"]
        assert isinstance(entry["bottleneck"]["stage"], str)
        assert entry["bottleneck"]["cause"]
        assert entry["steady"]["streamed"] and entry["steady"]["images"] > 2
        assert set(entry["stalls"]) >= {"input not ready", "ADC busy", "buffer port busy",
                                        "link busy", "output buffer full"}
        assert entry["analytic"]["throughput_ips"] > 0
    assert data["schemes"]["cr2"]["speedup"] > 1
    for scheme in ("dense", "sparse", "wpr", "cr2"):  # energy and area, as results read them
        entry = data["schemes"][scheme]
        for key in ("energy_j", "power_w", "area_mm2", "chip_area_mm2", "energy_saving",
                    "edp_js"):
            assert entry[key] > 0, (scheme, key)
        assert sum(entry["energy_by_component_j"].values()) == pytest.approx(entry["energy_j"])
        assert sum(entry["area_by_component_mm2"].values()) == pytest.approx(entry["area_mm2"])
        assert entry["counts"]["ou_activations"] == entry["ou_computes"]
    assert data["schemes"]["dense"]["energy_saving"] == 1
    for layer in data["layers"]:
        assert set(layer["energy_j"]) == {"dense", "sparse", "wpr", "cr2"}
    assert {"path", "value", "unit"} <= set(data["assumed"][0])
    sim = data["sim"]
    assert sim["granularity"] == "coarse" and sim["events"] > 0 and sim["wall_s"] > 0
    assert sim["partial"] is False


def test_run_table(capsys):
    assert main(["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--buffer", "512B",
                 "--alloc", "greedy", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "Per layer: tiny on tiny" in out and "branch_b" in out
    assert "greedy allocation of 512 B" in out and "SYNTHETIC" in out
    assert "testing images (ST): chelsea" in out
    assert "Energy and area per inference" in out
    assert "chip.tile.pattern_buffer.reference.leakage = 124 µW" in out


def test_run_bad_buffer_exit_2():
    result = run_cli("run", "tiny", "--arch", "tiny", "--buffer", "lots")
    assert result.returncode == 2
    assert result.stderr.startswith("cr2des: error: --buffer: expected a bytes")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["area-power", "nope.yaml"], "nope.yaml: no such architecture file"),
        (["workload", "nope"], "nope: no such workload file or zoo model"),
    ],
)
def test_errors_exit_2_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cr2des: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_run_cache_gives_the_same_results_and_finds_them_again(tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "2", "--jobs", "1",
            "--cache", str(cache), "--json"]
    outputs = []
    for _ in range(2):
        assert main(args) == 0
        out, err = capsys.readouterr()
        outputs.append((json.loads(out), err))
    assert main([*args[:-3], "--json"]) == 0  # no cache
    plain = json.loads(capsys.readouterr().out)

    def results(doc):  # every number but wall times
        if isinstance(doc, dict):
            return {k: results(v) for k, v in doc.items() if k not in ("wall_s", "timings_s")}
        return [results(v) for v in doc] if isinstance(doc, list) else doc

    (cold, cold_err), (warm, warm_err) = outputs
    assert results(cold) == results(warm) == results(plain)
    assert " 0 entries found" in cold_err and ", 0 computed" in warm_err


def test_run_cache_that_is_a_file_exit_2(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("")
    result = run_cli("run", "tiny", "--arch", "tiny", "--cache", str(afile))
    assert result.returncode == 2
    assert result.stderr.strip() == f"cr2des: error: {afile}: --cache: not a folder"


def test_invalid_arch_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "arch" / "tiny.yaml").read_text().replace("ou_rows: 4", "ou_rows: 64"))
    result = run_cli("area-power", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cr2des: error: {bad}: chip.tile.pe.crossbar.ou_rows: OU of 64 rows does not fit a "
        f"crossbar of 16 rows")


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("cr2des ")


def test_profile_json_reports_provenance(capsys):
    assert main(["profile", "tiny", "--arch", "tiny", "--n", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["weights"]["synthetic"] is True
    assert "SYNTHETIC" in data["weights"]["description"]
    assert data["images"]["names"] == ["astronaut", "chelsea"]
    layers = {p["name"]: p for p in data["layers"]}
    assert set(layers) == {"conv1", "conv2", "dw", "branch_a", "branch_b", "fc"}
    conv2 = layers["conv2"]
    # 16x16 outputs x 2 images, 2 groups x ceil(36 / 4) = 18 bands, 8 bit-planes
    assert conv2["vectors"] == 512 and conv2["bands"] == 18
    assert conv2["patterns"] == 512 * 18 * 8
    assert 0 <= conv2["zero_patterns"] <= 1 and len(conv2["zero_bits"]) == 8
    assert layers["conv1"]["signed"] and not conv2["signed"]
    # post-ReLU inputs: at least the zeros of the ReLU, so some all-zero patterns
    assert conv2["zero_activations"] > 0.2 and conv2["zero_patterns"] > 0.05


def test_profile_table_says_synthetic(capsys):
    assert main(["profile", "tiny", "--arch", "tiny", "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "top-16 share" in out


def test_profile_bad_weights_file_exit_2(tmp_path):
    bad = tmp_path / "w.npz"
    import numpy as np

    np.savez(bad, **{"conv1.weight": np.zeros((8, 3, 5, 5), np.float32)})
    result = run_cli("profile", "tiny", "--arch", "tiny", "--n", "1", "--weights", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cr2des: error: {bad}: layer 'conv1' expects weight of shape (8, 3, 3, 3), the file "
        f"has (8, 3, 5, 5)")


def test_run_writes_a_trace(tmp_path, capsys):
    trace = tmp_path / "out" / "trace.json"
    trace.parent.mkdir()  # an output's folder must exist (checked before the run starts)
    assert main(["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--trace",
                 str(trace), "--trace-scheme", "wpr"]) == 0
    out = capsys.readouterr().out
    assert f"trace: {trace}" in out and "Top stalls" in out
    data = json.loads(trace.read_text())
    assert data["otherData"]["title"].endswith("wpr")
    assert [p.name for p in trace.parent.iterdir()] == ["trace.json"]  # no temporary left


def test_run_partial_is_marked(capsys):
    assert main(["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--max-events",
                 "100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sim"]["partial"] is True
    assert all(data["schemes"][s]["partial"] for s in ("dense", "sparse", "wpr", "cr2"))
    assert "stopped after --max-events 100 events" in data["schemes"]["cr2"]["reason"]


def test_stream_options_reach_the_simulation_and_the_record(capsys):
    """--stream-images caps every scheme's stream and --in-flight its admission; the
    record says how streams admit and stop."""
    base = ["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--jobs", "1", "--json"]
    assert main(base) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["sim"]["stream"] == {"rows": 45_000, "tolerance": 0.02, "images": 1000,
                                        "in_flight": None}
    caps = {default["schemes"][s]["steady"]["in_flight"] for s in default["schemes"]}
    streamed = {s: default["schemes"][s]["steady"]["images"] for s in default["schemes"]}
    assert max(streamed.values()) > 20  # so that the cap below bites
    assert main([*base, "--stream-rows", "1e6", "--tolerance", "0.05",
                 "--stream-images", "20", "--in-flight", "7"]) == 0
    capped = json.loads(capsys.readouterr().out)
    assert capped["sim"]["stream"] == {"rows": 1_000_000, "tolerance": 0.05, "images": 20,
                                       "in_flight": 7}
    assert all(capped["schemes"][s]["steady"]["images"] <= 20 for s in capped["schemes"])
    assert 7 not in caps  # each scheme's own cap otherwise
    assert {capped["schemes"][s]["steady"]["in_flight"] for s in capped["schemes"]} == {7}


@pytest.mark.parametrize(("args", "message"), [
    (["--stream-rows", "0"], "--stream-rows: must be in [1, 1000000000], got 0"),
    (["--tolerance", "0"], "--tolerance: must be in (0, 0.5], got 0"),
    (["--tolerance", "nan"], "--tolerance: must be in (0, 0.5], got nan"),
    (["--tolerance", "much"], "--tolerance: expected a number in (0, 0.5], got 'much'"),
    (["--stream-images", "2.5"], "--stream-images: expected a whole number, got '2.5'"),
    (["--in-flight", "0"], "--in-flight: must be in [1, 100000], got 0"),
])
def test_bad_stream_options_exit_2(args, message):
    result = run_cli("run", "tiny", "--arch", "tiny", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_run_analytic_engine_only(capsys):
    assert main(["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--engine",
                 "analytic", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sim"]["events"] == 0 and "latency_s" not in data["schemes"]["cr2"]
    assert data["schemes"]["cr2"]["analytic"]["bottleneck_s"] > 0


def test_run_deadlock_exit_2():
    result = run_cli("run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1",
                     "--edge-buffer", "100B")
    assert result.returncode == 2
    assert result.stderr.startswith("cr2des: error: deadlock: layer ")
    assert "Traceback" not in result.stderr


def _light(name):
    from pathlib import Path

    import onnx

    return Path(onnx.__file__).parent / "backend/test/data/light" / f"light_{name}.onnx"


def test_import_and_workload_of_an_onnx_graph(tmp_path, capsys):
    out = tmp_path / "inception.yaml"
    assert main(["import", str(_light("inception_v1")), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "placeholders" in printed
    assert main(["workload", str(out), "--json"]) == 0
    from_yaml = json.loads(capsys.readouterr().out)
    assert main(["workload", str(_light("inception_v1")), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert from_yaml["total_macs"] == from_onnx["total_macs"] == 1_431_556_352
    assert from_yaml["layers"] == from_onnx["layers"]


def test_import_of_a_bad_file_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    out = tmp_path / "out.yaml"
    result = run_cli("import", str(bad), "-o", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"cr2des: error: {bad}")
    assert list(tmp_path.iterdir()) == [bad]
