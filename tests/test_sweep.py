"""Sweeps: expansion and validation of sweep files, the content-addressed cache, durable
records and resume, and runs on a dask LocalCluster (including a killed worker)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cr2des.cli import main
from cr2des.compression.cache import Cache, digest
from cr2des.errors import SpecError
from cr2des.results.sweep import expand, load_sweep, sweep_from_dict
from cr2des.results.sweep_runner import (
    NOTHING,
    RECORDS,
    append_record,
    comparable,
    execute_point,
    latest,
    point_payload,
    read_records,
)

from .conftest import ROOT

TINY = {"model": "tiny", "arch": "tiny", "sl": 1, "st": 1}


def sweep_of(data: dict, folder: Path = ROOT) -> list:
    return expand(sweep_from_dict(data, folder=folder, file="s.yaml"))


# ------------------------------------------------------------------ expansion
def test_product_and_zip_groups_expand_in_order():
    points = sweep_of({"base": TINY, "axes": [
        {"run.buffer": ["256B", "1KiB"]},
        {"arch.chip.tile.pe.crossbar.ou_rows": [2, 4],
         "arch.chip.tile.pe.crossbar.ou_cols": [2, 4]},
    ]})
    assert [p.values for p in points] == [
        {"run.buffer": "256B", "arch.chip.tile.pe.crossbar.ou_rows": 2,
         "arch.chip.tile.pe.crossbar.ou_cols": 2},
        {"run.buffer": "256B", "arch.chip.tile.pe.crossbar.ou_rows": 4,
         "arch.chip.tile.pe.crossbar.ou_cols": 4},
        {"run.buffer": "1KiB", "arch.chip.tile.pe.crossbar.ou_rows": 2,
         "arch.chip.tile.pe.crossbar.ou_cols": 2},
        {"run.buffer": "1KiB", "arch.chip.tile.pe.crossbar.ou_rows": 4,
         "arch.chip.tile.pe.crossbar.ou_cols": 4},
    ]
    assert points[1].options.buffer_bytes == 256
    assert points[1].arch_data["chip"]["tile"]["pe"]["crossbar"]["ou_rows"] == 4
    assert len({p.point_id for p in points}) == 4


def test_mapping_axes_combine_as_product_or_zip():
    axes = {"run.sl": [1, 2], "run.st": [1, 2]}
    assert len(sweep_of({"base": TINY, "axes": axes})) == 4
    zipped = sweep_of({"base": TINY, "axes": axes, "combine": "zip"})
    assert [(p.options.sl, p.options.st) for p in zipped] == [(1, 1), (2, 2)]


def test_point_id_depends_on_everything_the_point_says():
    a, = sweep_of({"base": TINY})
    b, = sweep_of({"base": {**TINY, "seed": 1}})
    c, = sweep_of({"base": TINY, "axes": {"arch.chip.tile.pe.crossbar.read_latency": ["20ns"]}})
    again, = sweep_of({"base": dict(reversed(list(TINY.items())))})
    assert len({a.point_id, b.point_id, c.point_id}) == 3
    assert again.point_id == a.point_id


def test_every_invalid_point_is_listed_with_its_dotted_path():
    with pytest.raises(SpecError) as err:
        sweep_of({"base": TINY, "axes": {
            "arch.chip.tile.pe.adc.bits": [0, 8, 99],
            "run.alloc": ["exact", "magic"]}})
    text = str(err.value)
    assert text.startswith("s.yaml: 5 of 6 points are invalid")
    assert "arch.chip.tile.pe.adc.bits: must be >= 1, got 0" in text
    assert "arch.chip.tile.pe.adc.bits: must be <= 16, got 99" in text
    assert "run.alloc: must be one of" in text and "'magic'" in text


def test_a_worker_parses_a_workload_once_while_its_file_is_unchanged(tmp_path):
    from cr2des.results.sweep_runner import worker_workload
    from cr2des.workloads.load import ZOO_DIR

    path = tmp_path / "net.yaml"
    path.write_text((ZOO_DIR / "tiny.yaml").read_text())
    first = worker_workload(str(path))
    assert worker_workload(str(path)) is first
    assert worker_workload("tiny") is worker_workload("tiny")
    path.write_text(path.read_text().replace("name: tiny", "name: tiny_changed"))
    changed = worker_workload(str(path))
    assert changed is not first and changed.name == "tiny_changed"


def test_stream_options_of_a_point_reach_its_simulations():
    from cr2des.results.pipeline import sim_options
    from cr2des.results.sweep_runner import _inputs

    points = sweep_of({"base": TINY, "axes": {"run.stream_rows": [1000, 2_000_000],
                                               "run.tolerance": [0.1],
                                               "run.stream_images": [50],
                                               "run.in_flight": [9]}})
    options = [sim_options(_inputs(point_payload(p))[3]) for p in points]
    assert [(o.stream_rows, o.tolerance, o.max_images, o.in_flight) for o in options] == [
        (1000, 0.1, 50, 9), (2_000_000, 0.1, 50, 9)]


@pytest.mark.parametrize(("data", "message"), [
    ({"axes": {"run.nope": [1]}}, "unknown run option 'nope'"),
    ({"axes": {"model": [1]}}, "an axis is 'run.<option>' or 'arch.<dotted.key>'"),
    ({"axes": {"run.sl": []}}, "expected a non-empty list of values"),
    ({"axes": {"run.sl": 3}}, "expected a non-empty list of values"),
    ({"axes": [{"run.sl": [1, 2], "run.st": [1]}]}, "zipped axes need lists of one length"),
    ({"axes": [{"run.sl": [1]}, {"run.sl": [2]}]}, "axis 'run.sl' is given twice"),
    ({"base": {"buffer": "-1KiB"}}, "base.buffer: must be >= 0"),
    ({"axes": {"run.tolerance": [0.01, 0.9]}}, "run.tolerance: must be <= 0.5, got 0.9"),
    ({"axes": {"run.stream_rows": [0]}}, "run.stream_rows: must be >= 1, got 0"),
    ({"base": {"colour": "red"}}, "unknown key 'colour'"),
    ({"combine": "cross"}, "must be 'product' or 'zip'"),
    ({"version": 7}, "unsupported sweep version 7"),
    ({"axes": {"run.sl": list(range(1, 101)), "run.st": list(range(1, 101)),
               "run.seed": [0, 1]}}, "more than the limit"),
    ({"axes": {"arch.chip..tiles": [1]}}, "malformed architecture path"),
])
def test_bad_sweep_files_are_refused(data, message):
    with pytest.raises(SpecError) as err:
        sweep_of({"base": TINY, **data} if "base" not in data else data)
    assert message in str(err.value)


def test_shipped_sweeps_expand():
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        assert expand(load_sweep(path)), path


# ------------------------------------------------------------------ cache
def test_cache_round_trip_and_digest_order(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("thing", {"b": 1, "a": np.arange(3)})
    assert key == cache.key("thing", {"a": np.arange(3), "b": 1})
    assert key != cache.key("thing", {"a": np.arange(3, dtype=np.int32), "b": 1})
    assert cache.load(key) is None
    cache.store(key, {"x": np.arange(5)}, {"note": "hi"})
    arrays, meta = cache.load(key)
    assert arrays["x"].tolist() == [0, 1, 2, 3, 4] and meta == {"note": "hi"}
    assert cache.stats.hits == 1 and cache.stats.misses == 1
    assert digest([1, "a"]) != digest(["1", "a"])


def test_a_corrupt_entry_is_recomputed_never_trusted(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("thing", 1)
    cache.store(key, {"x": np.arange(1000)})
    (npz,) = tmp_path.glob("*/*.npz")
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    assert cache.load(key) is None
    assert cache.stats.corrupt == 1
    assert not npz.exists()  # discarded, so the next store writes a good one


def test_study_with_cache_equals_study_without(tmp_path):
    from cr2des import StudyOptions, load_arch, load_workload, run_study

    workload, arch = load_workload("tiny"), load_arch("tiny")
    options = StudyOptions(n_learn=1, n_test=1, capacity_bytes=1024)
    plain = run_study(workload, arch, options).to_dict()
    cold_cache, warm_cache = Cache(tmp_path), Cache(tmp_path)
    cold = run_study(workload, arch, options, cache=cold_cache).to_dict()
    warm = run_study(workload, arch, options, cache=warm_cache).to_dict()
    for data in (plain, cold, warm):
        data.pop("timings_s")
    assert plain == cold == warm
    assert cold_cache.stats.hits == 0 and cold_cache.stats.misses > 0
    assert warm_cache.stats.misses == 0 and warm_cache.stats.hits == cold_cache.stats.misses
    assert set(warm_cache.stats.kinds) == {"weights", "images", "reference", "map", "learned",
                                           "counts"}


def test_images_are_cached_only_from_the_bundled_photographs(tmp_path):
    """An array file (or a folder) can change without cr2des knowing: read every time."""
    from cr2des import StudyOptions, load_arch, load_workload, run_study
    from cr2des.data.datapath import DataOptions

    array = tmp_path / "images.npy"
    np.save(array, np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8))
    workload, arch = load_workload("tiny"), load_arch("tiny")
    for images, cached in ((str(array), False), ("samples", True)):
        cache = Cache(tmp_path / "cache")
        run_study(workload, arch, StudyOptions(data=DataOptions(images=images), n_learn=1,
                                               n_test=1), cache=cache)
        assert ("images" in cache.stats.kinds) is cached, images


def test_a_buffer_change_reuses_every_cached_part(tmp_path):
    from cr2des import StudyOptions, load_arch, load_workload, run_study

    workload, arch = load_workload("tiny"), load_arch("tiny")
    run_study(workload, arch, StudyOptions(n_learn=1, n_test=1, capacity_bytes=256),
              cache=Cache(tmp_path))
    second = Cache(tmp_path)
    study = run_study(workload, arch, StudyOptions(n_learn=1, n_test=1, capacity_bytes=4096),
                      cache=second)
    # only the layers given entries are classified again (256 bytes give none)
    assert second.stats.misses == second.stats.kinds["counts"]["misses"] == sum(
        1 for n in study.allocation.entries.values() if n) > 0
    third = Cache(tmp_path)
    assert run_study(workload, arch, StudyOptions(n_learn=1, n_test=1, capacity_bytes=4096),
                     cache=third).to_dict()["layers"] == study.to_dict()["layers"]
    assert third.stats.misses == 0


# ------------------------------------------------------------------ records
def test_a_torn_last_line_is_not_a_record_and_is_repaired(tmp_path):
    path = tmp_path / RECORDS
    append_record(path, {"id": "a", "status": "ok"})
    append_record(path, {"id": "b", "status": "ok"})
    with open(path, "ab") as handle:
        handle.write(b'{"id": "c", "sta')
    assert [r["id"] for r in read_records(path)] == ["a", "b"]
    read_records(path, repair=True)
    append_record(path, {"id": "c", "status": "ok"})
    assert [r["id"] for r in read_records(path)] == ["a", "b", "c"]


def test_a_damaged_middle_line_is_an_error(tmp_path):
    path = tmp_path / RECORDS
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(SpecError, match="line 2 is not a point record"):
        read_records(path)


def test_latest_record_wins():
    assert latest([{"id": "a", "status": "failed"}, {"id": "a", "status": "ok"}])["a"][
        "status"] == "ok"


COPIES_NONE = ROOT / "tests" / "golden" / "cr2_copies_none.yaml"


@pytest.mark.parametrize("arch", ["tiny", str(COPIES_NONE)])
def test_a_point_record_equals_the_standalone_run(tmp_path, capsys, arch):
    """Alone, in a sweep with a cold cache, and with every part found in the cache: one
    result (entries held once per router and once per layer, whose byte methods'
    allocations are cached)."""
    (point,) = sweep_of({"base": {**TINY, "arch": arch, "buffer": "1KiB"}})
    cold = execute_point(point_payload(point), str(tmp_path / "cache"))
    warm = execute_point(point_payload(point), str(tmp_path / "cache"))
    assert cold["status"] == warm["status"] == "ok", cold["error"]
    assert cold["cache"]["by_kind"]["simulation"]["misses"] == 4
    assert warm["cache"]["misses"] == 0
    assert {"simulation", "curve"} <= set(warm["cache"]["by_kind"])
    assert ("allocation" in warm["cache"]["by_kind"]) is (arch != "tiny")
    assert main(["run", "tiny", "--arch", arch, "--sl", "1", "--st", "1", "--buffer", "1KiB",
                 "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    alone["arch"].pop("source")
    for record in (cold, warm):
        swept = json.loads(json.dumps(record["result"]))
        swept["arch"].pop("source")
        assert comparable(swept) == comparable(alone)


def test_prepare_parts_fill_what_every_point_reads_and_the_curve_gives_each_allocation(
        tmp_path):
    """The two prepare tasks and the curve task compute every entry a study of the group
    reads but the classifications against its buffers (the prepare tasks in either
    order); the curve task caches each method's curve and gives every point the digest of
    the allocation the point's own study makes."""
    from cr2des.compression.study import run_study
    from cr2des.results.record import ipr_curve
    from cr2des.results.sweep_runner import PREPARE, _inputs, execute_shared

    points = sweep_of({"base": TINY, "axes": {"run.buffer": ["256B", "512B", "4KiB"],
                                              "run.alloc": ["time", "exact"]}})
    cache = str(tmp_path)
    for part in reversed(PREPARE):
        assert execute_shared(point_payload(points[0]), part, cache)["error"] is None
    wanted = [{"id": p.point_id, "buffer": p.options.buffer_bytes, "alloc": p.options.alloc}
              for p in points]
    done = execute_shared(point_payload(points[0]), "curve", cache, wanted)
    assert done["error"] is None and done["cache"]["by_kind"]["curve"]["misses"] == 2
    digests = done["allocations"]
    for point in points:
        workload, arch, options, _ = _inputs(point_payload(point))
        found = Cache(tmp_path)
        study = run_study(workload, arch, options, cache=found)
        ipr_curve(study, cache=found)
        # only classifications against buffers with entries are left to compute (or found
        # when an earlier point's layer held the same entries)
        buffered = sum(1 for n in study.allocation.entries.values() if n)
        assert found.stats.misses == found.stats.kinds["counts"]["misses"] <= buffered, \
            found.stats.to_dict()
        a = study.allocation
        assert digests[point.point_id] == (
            digest(a.entries, a.bytes_per_layer, a.copies) if any(a.bytes_per_layer.values())
            else NOTHING)
    # nothing fits in 256B or 512B (whole banks); 4KiB holds entries
    by_buffer = {p.values["run.buffer"]: digests[p.point_id] for p in points
                 if p.options.alloc == "time"}
    assert by_buffer["256B"] == by_buffer["512B"] == NOTHING != by_buffer["4KiB"]


def test_points_with_one_allocation_share_their_cr2_simulation(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    # 1KiB and 1536B hold the same entries, 2KiB more; 256B none (its cr2 is wpr's)
    sweep.write_text(SWEEP.replace("[128B, 256B, 512B, 1KiB, 2KiB, 4KiB]",
                                   "[256B, 1KiB, 1536B, 2KiB]"))
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--workers", "1", "--out", str(out)]) == 0
    records = {r["values"]["run.buffer"]: r for r in read_records(out / RECORDS)}
    misses = {b: r["cache"]["by_kind"]["simulation"]["misses"] for b, r in records.items()}
    assert misses["2KiB"] == 1 and sorted([misses["1KiB"], misses["1536B"]]) == [0, 1]
    assert misses["256B"] == 0
    follower = next(r for b, r in records.items() if misses[b] == 0)
    capsys.readouterr()
    assert main(["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--buffer",
                 follower["values"]["run.buffer"], "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    swept = json.loads(json.dumps(follower["result"]))
    for data in (alone, swept):
        data["arch"].pop("source")
    assert comparable(swept) == comparable(alone)


def test_byte_allocations_at_many_capacities_equal_each_alone_and_are_cached(tmp_path):
    from cr2des.compression.allocation import METHODS
    from cr2des.compression.study import reallocate, run_study
    from cr2des.results.record import byte_allocations, learned_tables
    from cr2des.results.sweep_runner import _inputs

    (point,) = sweep_of({"base": {**TINY, "arch": str(COPIES_NONE)}})
    workload, arch, options, _ = _inputs(point_payload(point))
    study = run_study(workload, arch, options)
    tables = learned_tables(study)
    capacities = [4096, 0, 256, 1024, 96]
    cache = Cache(tmp_path)
    for method in METHODS:
        expected = [reallocate(study, c, method) for c in capacities]
        assert len({tuple(a.entries.values()) for a in expected}) > 2, method
        assert byte_allocations(study, tables, capacities, method) == expected
        assert byte_allocations(study, tables, capacities, method, cache) == expected
        assert byte_allocations(study, tables, capacities[1:3], method, cache) == expected[1:3]
    assert cache.stats.kinds["allocation"] == {"hits": 8, "misses": 20, "corrupt": 0}


def _profiler_on(dask_worker) -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def test_local_workers_keep_glibc_allocation_thresholds_and_do_not_profile():
    """dask's MALLOC_TRIM_THRESHOLD_ doubled a point's study time, and its statistical
    profiler slowed the simulations by a fifth; its one-thread settings stay."""
    from cr2des.results.sweep_runner import _client

    with _client(1, None) as client:
        environ = client.submit(lambda: dict(os.environ), pure=False).result()
        profiling = client.run(_profiler_on)
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ.get("OPENBLAS_NUM_THREADS") == "1"
    assert list(profiling.values()) == [False]


def test_a_failing_point_becomes_a_failed_record(tmp_path):
    (point,) = sweep_of({"base": {**TINY, "images": str(tmp_path / "no-such-folder")}})
    record = execute_point(point_payload(point), None)
    assert record["status"] == "failed" and record["result"] is None
    assert "no-such-folder" in record["error"]


# ------------------------------------------------------------------ on a cluster
SWEEP = """\
version: 1
name: t
base: {model: tiny, arch: tiny, sl: 1, st: 1}
axes:
  run.buffer: [128B, 256B, 512B, 1KiB, 2KiB, 4KiB]
"""


def run_sweep_cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cr2des", "sweep", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, **kw)


def ok_records(out: Path) -> dict[str, dict]:
    records = read_records(out / RECORDS)
    oks = [r for r in records if r["status"] == "ok"]
    assert len(oks) == len({r["id"] for r in oks}), "a point finished twice"
    return {r["id"]: comparable(r) for r in oks}


@pytest.mark.slow
def test_killed_worker_and_killed_sweep_resume_to_the_uninterrupted_result(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(SWEEP)
    reference = tmp_path / "reference"
    done = run_sweep_cli(str(sweep), "--workers", "2", "--out", str(reference))
    assert done.wait(timeout=300) == 0, done.stderr.read()

    out = tmp_path / "interrupted"
    proc = run_sweep_cli(str(sweep), "--workers", "2", "--out", str(out),
                         start_new_session=True)
    records = out / RECORDS
    deadline = time.monotonic() + 240
    while not (records.exists() and read_records(records)) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = read_records(records)[0]
    os.kill(first["worker"], signal.SIGKILL)  # a worker dies mid-sweep; dask re-runs its work
    while len(read_records(records)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # then the whole sweep dies
    proc.wait(timeout=60)
    before = ok_records(out)
    assert 3 <= len(before) < 6 or len(before) == 6

    resumed = run_sweep_cli(str(sweep), "--workers", "2", "--out", str(out), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    after = ok_records(out)
    assert after == ok_records(reference)
    assert {k: after[k] for k in before} == before
    assert len(read_records(records)) == 6  # every point exactly once


def test_sweep_cli_runs_and_refuses_to_clobber(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(SWEEP.replace("[128B, 256B, 512B, 1KiB, 2KiB, 4KiB]", "[1KiB, 2KiB]"))
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--workers", "1", "--out", str(out)]) == 0
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("index,id,run.buffer,status")
    # the schemes without a buffer and the curve were computed once, before the points
    for record in read_records(out / RECORDS):
        kinds = record["cache"]["by_kind"]
        assert kinds["simulation"] == {"hits": 3, "misses": 1, "corrupt": 0}, record["index"]
        assert kinds["curve"]["hits"] == 1 and kinds["reference"]["misses"] == 0
    assert "2 points done, 0 failed" in capsys.readouterr().out
    assert main(["sweep", str(sweep), "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["sweep", str(sweep), "--out", str(out), "--resume"]) == 0
    assert "0 points done, 0 failed, 2 already finished" in capsys.readouterr().out
    assert len(read_records(out / RECORDS)) == 2


def test_sweep_dry_run_lists_points(capsys):
    assert main(["sweep", str(ROOT / "sweeps" / "sl_x_st.yaml"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12 and "run.sl=1, run.st=2" in lines[0]


def test_sweep_figures_come_from_the_records(tmp_path, capsys):
    from cr2des.report.sweep_plots import pareto_front

    assert pareto_front([(1, 5), (2, 3), (3, 4), (4, 1), (2, 6)]) == [(1, 5), (2, 3), (4, 1)]
    sweep = tmp_path / "s.yaml"
    sweep.write_text("version: 1\nname: t\nbase: {model: tiny, arch: tiny, st: 1}\naxes:\n"
                     "  - run.buffer: [256B, 1KiB]\n  - run.sl: [1, 2]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--workers", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plot", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("sweep-buffer.png", "sweep-hit-rate.png", "sweep-pareto.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert name in printed
    from .test_results import labels

    assert [a["xlabel"] for a in labels(out / "sweep-buffer.png")] == [
        "chip pattern-buffer capacity (KiB)"] * 2
    assert [a["xlabel"] for a in labels(out / "sweep-hit-rate.png")] == [
        "learning images (SL)"]
    assert [(a["xlabel"], a["ylabel"]) for a in labels(out / "sweep-pareto.png")] == [
        ("area of the used tiles (mm²)", "energy per inference (mJ)")]


# ------------------------------------------------------------------ cached simulations
def tiny_study(capacity_bytes: int, cache: Cache | None = None):
    from cr2des import StudyOptions, load_arch, load_workload, run_study

    return run_study(load_workload("tiny"), load_arch("tiny"),
                     StudyOptions(n_learn=1, n_test=2, capacity_bytes=capacity_bytes),
                     cache=cache)


def result_data(result) -> str:
    """Every field of a simulation result but its wall time, as text (NaN equals NaN)."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
              if f.name not in ("wall_s", "stats")}
    stats = {f.name: (dict(value) if isinstance(value, dict) else value)
             for f in dataclasses.fields(result.stats)
             for value in (getattr(result.stats, f.name),)}
    return repr((fields, stats))


def test_pack_round_trips_a_simulation_result_exactly():
    from cr2des.compression.cache import pack, unpack
    from cr2des.simulation.cached import RESULT_CLASSES
    from cr2des.simulation.sim import simulate

    result = simulate(tiny_study(1024), "cr2")
    result.image_latency_s.append(float("nan"))
    result.steady["odd"] = (0.1 + 0.2, float("inf"), -0.0)
    arrays, data = pack(result, RESULT_CLASSES)
    back = unpack(arrays, json.loads(json.dumps(data)), RESULT_CLASSES)
    assert result_data(back) == result_data(result)
    assert back.stats.stalls == result.stats.stalls and back.stats.busy == result.stats.busy
    assert back.steady["odd"][0] == 0.1 + 0.2 and str(back.steady["odd"][2]) == "-0.0"
    with pytest.raises(TypeError):
        pack({"path": Path(".")}, RESULT_CLASSES)


@pytest.mark.parametrize("fine", [False, True])
def test_a_cached_simulation_equals_a_fresh_one(tmp_path, fine):
    from cr2des.simulation.cached import simulate_cached
    from cr2des.simulation.sim import SimOptions, simulate

    study = tiny_study(1024)
    schemes = ("dense", "sparse", "wpr", "cr2")
    options = SimOptions()
    if fine:  # one event per OU also reads the per-crossbar counts; a stopped run is enough
        schemes, options = ("cr2",), SimOptions(granularity="fine", max_events=20_000)
    cold, warm = Cache(tmp_path), Cache(tmp_path)
    for scheme in schemes:
        fresh = result_data(simulate(study, scheme, options))
        assert result_data(simulate_cached(study, scheme, options, cold)) == fresh, scheme
        assert result_data(simulate_cached(study, scheme, options, warm)) == fresh, scheme
    n = len(schemes)
    assert cold.stats.kinds["simulation"] == {"hits": 0, "misses": n, "corrupt": 0}
    assert warm.stats.kinds["simulation"] == {"hits": n, "misses": 0, "corrupt": 0}


def test_only_what_a_scheme_depends_on_addresses_its_simulation(tmp_path):
    from cr2des.simulation.cached import SimulationInputs
    from cr2des.simulation.sim import SimOptions

    cache = Cache(tmp_path)
    small, large = tiny_study(256), tiny_study(4096)
    assert small.allocation.bytes_per_layer != large.allocation.bytes_per_layer
    options = SimOptions()

    def key(study, scheme, opts=options):
        return SimulationInputs(study, scheme, opts).key(cache, opts)

    for scheme in ("dense", "sparse", "wpr"):  # the buffer does not reach them
        assert key(small, scheme) == key(large, scheme), scheme
    assert key(small, "cr2") != key(large, "cr2")
    assert key(small, "dense") != key(small, "sparse")
    assert key(small, "dense") != key(small, "dense", SimOptions(max_events=999))
    # the view holds nothing else of the study: a simulation reading more fails loudly
    view = SimulationInputs(small, "dense", options)
    assert view.layers == {} and not hasattr(view, "learn")  # no layer uses a buffer
    buffered = SimulationInputs(small, "cr2", options)
    assert set(buffered.layers) == set(buffered.allocation.bytes_per_layer)
    with pytest.raises(KeyError):
        view.stage(next(iter(small.layers)), "cr2")


def test_cr2_with_nothing_buffered_finds_the_wpr_simulation(tmp_path):
    """The address holds what a simulation reads, not the scheme's name: cr2 at a capacity
    that buffers nothing has wpr's inputs, finds wpr's result and labels it cr2."""
    from cr2des.simulation.cached import SimulationInputs, simulate_cached
    from cr2des.simulation.sim import SimOptions, simulate

    cache, options = Cache(tmp_path), SimOptions()
    empty, buffered = tiny_study(0), tiny_study(4096)
    assert not any(empty.allocation.bytes_per_layer.values())
    assert (SimulationInputs(empty, "cr2", options).key(cache, options)
            == SimulationInputs(empty, "wpr", options).key(cache, options))
    assert (SimulationInputs(buffered, "cr2", options).key(cache, options)
            != SimulationInputs(buffered, "wpr", options).key(cache, options))
    simulate_cached(empty, "wpr", options, cache)
    found = simulate_cached(empty, "cr2", options, cache)
    assert cache.stats.kinds["simulation"] == {"hits": 1, "misses": 1, "corrupt": 0}
    assert found.scheme == "cr2"
    assert result_data(found) == result_data(simulate(empty, "cr2", options))


def test_the_curve_is_the_same_for_every_capacity_and_cached(tmp_path):
    from cr2des.results.record import curve_capacities, ipr_curve

    cache = Cache(tmp_path)
    curves = {}
    for capacity in (256, 4096):
        study = tiny_study(capacity, cache)
        plain = ipr_curve(study)
        assert ipr_curve(study, cache=cache) == plain == ipr_curve(study, cache=cache)
        assert capacity in plain["capacity_bytes"]
        curves[capacity] = plain
    assert cache.stats.kinds["curve"] == {"hits": 3, "misses": 1, "corrupt": 0}
    grid = curve_capacities(study.arch)
    for field in ("used_bytes", "hit_rate_learn", "hit_rate_test"):
        on_grid = [{c: v for c, v in zip(curve["capacity_bytes"], curve[field], strict=True)
                    if c in grid} for curve in curves.values()]
        assert on_grid[0] == on_grid[1], field


def test_a_memo_hands_out_read_only_entries_within_its_budget(tmp_path):
    from cr2des.compression.cache import Memo

    memo = Memo(max_bytes=1000)
    cache = Cache(tmp_path, memo=memo)
    first, second = cache.key("thing", 1), cache.key("thing", 2)
    mine = np.arange(100, dtype=np.int64)  # 800 bytes
    cache.store(first, {"x": mine})
    mine[0] = 7  # the caller's array is its own: the stored entry does not change
    arrays, _ = Cache(tmp_path, memo=memo).load(first)
    assert arrays["x"][0] == 0 and not arrays["x"].flags.writeable
    (tmp_path / first[-40:][:2] / f"{first}.npz").unlink()  # served from memory now
    assert Cache(tmp_path, memo=memo).load(first) is not None
    cache.store(second, {"x": np.arange(100, dtype=np.int64)})  # over budget: first leaves
    assert memo.bytes <= 1000 and memo.get(first) is None and memo.get(second) is not None
