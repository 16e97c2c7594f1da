"""The results of a study as data: the JSON document, its CSV tables and its summary.

One model's *record* is the ``cr2des run --json`` document: the study's counts
(:meth:`cr2des.compression.study.Study.to_dict`), each scheme's simulated timing and closed-form
estimate, and what the figures need so that they can be redrawn from the JSON alone
(per-layer time by scheme, the IPR hit-rate curve against buffer capacity, the allocation
methods side by side, the area of each component).  Several models make one document
``{"schema_version", "models": [record, ...], "summary": [row, ...]}``; a single model's
document is its record with ``schema_version``.

The CSV tables are flat views of the document: ``schemes.csv`` one row per model and
scheme, every scalar of the scheme's entry a column (nested dicts of scalars flattened to
dotted names, so a field added to the JSON becomes a column without a change here);
``layers.csv`` one row per model, crossbar layer and scheme.  Fields a version of cr2des
does not compute are absent from the JSON and empty in the CSV; the report says
"n/a (not computed)" for them.

Nothing here prints: the report layer (:mod:`cr2des.report.headline`) and the figures
(:mod:`cr2des.report.plots`) read these records.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compression.allocation import (
    METHODS,
    Allocation,
    LayerValues,
    allocate_many,
    allocation_of,
)
from ..compression.patterns import PatternCounts, best_entries
from ..compression.study import (
    ALLOCS,
    capacity_for_all_entries,
    copies_per_router,
    reallocate,
    reallocate_many,
)
from ..errors import Cr2desError
from ..fileio import atomic_write_text, strict_json

if TYPE_CHECKING:
    from ..compression.cache import Cache
    from ..compression.study import Study
    from ..costs.area_power import AreaPower
    from ..simulation.sim import Estimate, SimResult

#: version of the results document; raised when a field changes meaning or is removed
RESULTS_SCHEMA_VERSION = 1

#: what reports print for a field this version does not compute
NOT_COMPUTED = "n/a (not computed)"

#: the networks of the CR2 study, what ``cr2des run all`` runs
PAPER_MODELS = ("alexnet", "vgg16", "resnet50", "googlenet")

#: capacities of the IPR hit-rate curve, as multiples of the architecture's pattern-buffer
#: capacity (:func:`curve_capacities`)
CURVE_FACTORS = (0.0, 1 / 64, 1 / 16, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 16.0)

#: capacity the curve is scaled from when the study allocates none (a chip without IPR)
CURVE_BASE_BYTES = 64 * 1024


def expand_models(names: Iterable[str]) -> list[str]:
    """Model arguments of ``cr2des run``: ``all`` is :data:`PAPER_MODELS`; repeats once."""
    models = [m for name in names for m in (PAPER_MODELS if name == "all" else (name,))]
    return list(dict.fromkeys(models))


class ResultsError(Cr2desError):
    """A results document that cannot be read (not JSON, wrong schema version, not ours)."""


# ----------------------------------------------------------------------------- building
def layer_times(study: Study, sims: Mapping[str, SimResult]) -> dict[str, dict[str, float]]:
    """Per crossbar layer and scheme: the simulated busy time of the layer's stage per image
    and replica (seconds), the share of the pipeline period the layer occupies.

    ``stats.busy`` holds each stage replica's busy time (``<stage>.r<k>``) over the run;
    dividing by replicas and images gives one replica's time per image, which is what the
    steady-state throughput of the layer is bound by.
    """
    from ..compression.timing import FS

    out: dict[str, dict[str, float]] = {name: {} for name in study.layers}
    for scheme, result in sims.items():
        busy: dict[str, int] = {}
        for track, fs in result.stats.busy.items():
            stage, _, replica = track.rpartition(".r")
            if stage in out and replica.isdigit():
                busy[stage] = busy.get(stage, 0) + fs
        images = max(1, result.images)
        for name in study.layers:
            replicas = study.placements[scheme].layers[name].replicas
            out[name][scheme] = busy.get(name, 0) / FS / replicas / images
    return out


def curve_capacities(arch: Any, factors: Iterable[float] = CURVE_FACTORS) -> list[int]:
    """The capacities of the hit-rate curve: ``factors`` times the architecture's own
    pattern-buffer capacity (:data:`CURVE_BASE_BYTES` for a chip without one).

    They do not depend on the capacity a run allocates (``--buffer``), so every point of a
    buffer sweep has the same curve, computed once and cached; the run's own capacity is
    added to it by :func:`ipr_curve`."""
    chip = int(arch.pattern_buffer_bytes)
    base = chip if chip > 0 else CURVE_BASE_BYTES
    return sorted({round(base * f) for f in factors})


def ipr_curve(study: Study, factors: Iterable[float] = CURVE_FACTORS, *,
              cache: Cache | None = None, tables: LearnedTables | None = None
              ) -> dict[str, Any]:
    """IPR hit rate on the learning and the testing images against total pattern-buffer
    capacity.

    Computed from the frequency tables alone, without a re-run: at each capacity the
    study's allocation method splits the bytes among layers using the learned tables, each
    layer holds its best learned entries, and the hits are the counts of the entries held
    in the learning and in the testing images' histograms.  The capacities are those of
    :func:`curve_capacities` and the study's own; at the study's own capacity the rates are
    exactly the study's hit rates (the testing one counted by a different path, the buffer
    lookups of the testing run).  ``tested`` lists the allocations a testing run was
    classified and simulated with (the run's and those of ``--compare-alloc``).

    With a ``cache`` the curve at :func:`curve_capacities` is found there when any run on
    the same tables, architecture and method computed it (:func:`cached_curve`).
    """
    capacity = int(study.allocation.capacity_bytes)
    tables = tables or learned_tables(study)
    candidates, learn_cum, test_cum, _, (learn_nonzero, test_nonzero) = tables
    method = study.allocation.method
    grid, held = curve_grid(study, tables, method, factors)
    on_grid = cached_curve(study, grid, tables, cache)
    capacities = sorted(set(grid) | {capacity})
    rates, test_rates, used = [], [], []
    for c in capacities:
        if c == capacity:
            allocation = study.allocation
            rates.append(_rate(learn_cum, allocation.entries, learn_nonzero))
            test_rates.append(_rate(test_cum, allocation.entries, test_nonzero)
                              if test_cum else None)
            used.append(allocation.used_bytes)
        else:
            at = grid.index(c)
            rates.append(on_grid["hit_rate_learn"][at])
            test_rates.append(on_grid["hit_rate_test"][at])
            used.append(on_grid["used_bytes"][at])
    tested = [{"method": s.allocation.method, "capacity_bytes": s.allocation.capacity_bytes,
               "hit_rate_learn": s.hit_rates()[0], "hit_rate_test": s.hit_rates()[1]}
              for s in (study, *study.alternatives.values())]
    return {"method": method, "capacity_bytes": capacities, "used_bytes": used,
            "hit_rate_learn": rates, "hit_rate_test": test_rates, "tested": tested,
            "entries_available": sum(c.count for c in candidates),
            "bytes_for_all_entries": held}


def curve_grid(study: Study, tables: LearnedTables, method: str,
               factors: Iterable[float] = CURVE_FACTORS) -> tuple[list[int], int]:
    """The capacities of ``method``'s hit-rate curve that do not depend on the study's own
    capacity (:func:`curve_capacities`, and with copies per router the capacity that holds
    every entry of value), and the bytes that hold every learned entry of value."""
    grid = curve_capacities(study.arch, factors)
    held = sum(c.count * c.width_bytes for c in tables[0])
    if copies_per_router(study.arch):  # every router's copies: the curve reaches it
        held = capacity_for_all_entries(study, method)
        grid = sorted(set(grid) | {held})
    return grid, held


def cached_curve(study: Study, capacities: list[int], tables: LearnedTables,
                 cache: Cache | None, method: str | None = None) -> dict[str, list[Any]]:
    """Used bytes and hit rates of ``method``'s allocation (default: the study's) at each of
    ``capacities`` (every allocation from one pass,
    :func:`cr2des.compression.study.reallocate_many`).

    Cached under a digest of what they depend on: the method, the capacities, the
    architecture and every layer's mapping, learned and testing histograms, entry width
    and key bits (not the study's own capacity or allocation)."""
    _, learn_cum, test_cum, _, (learn_nonzero, test_nonzero) = tables
    method = method or study.allocation.method
    key = None
    if cache is not None:
        key = cache.key("curve", method, capacities, study.arch,
                        [(name, layer.map, layer.learned, layer.tested, layer.width_bytes,
                          layer.buffer.key_bits) for name, layer in study.layers.items()])
        hit = cache.load(key)
        if hit is not None:
            arrays, meta = hit
            return {"used_bytes": [int(v) for v in arrays["used_bytes"]],
                    "hit_rate_learn": [float(v) for v in arrays["hit_rate_learn"]],
                    "hit_rate_test": ([float(v) for v in arrays["hit_rate_test"]]
                                      if meta["tested"] else [None] * len(capacities))}
    allocations = (byte_allocations(study, tables, capacities, method)
                   if method in METHODS and not copies_per_router(study.arch)
                   else reallocate_many(study, capacities, method))
    out: dict[str, list[Any]] = {
        "used_bytes": [a.used_bytes for a in allocations],
        "hit_rate_learn": [_rate(learn_cum, a.entries, learn_nonzero) for a in allocations],
        "hit_rate_test": [_rate(test_cum, a.entries, test_nonzero) if test_cum else None
                          for a in allocations]}
    if cache is not None and key is not None:
        arrays = {"used_bytes": np.array(out["used_bytes"], dtype=np.int64),
                  "hit_rate_learn": np.array(out["hit_rate_learn"], dtype=np.float64)}
        if test_cum:
            arrays["hit_rate_test"] = np.array(out["hit_rate_test"], dtype=np.float64)
        cache.store(key, arrays, {"tested": bool(test_cum), "method": method,
                                  "capacities": capacities})
    return out


#: what :func:`learned_tables` returns
LearnedTables = tuple[list[LayerValues], dict[str, np.ndarray], dict[str, np.ndarray],
                      dict[str, float], tuple[int, int]]


def learned_tables(study: Study) -> LearnedTables:
    """Each layer's candidate entries (best first); the cumulative counts of its ``k`` best
    entries on the learning and on the testing images; its work; and the non-zero OU
    input patterns of all layers on each image set."""
    from ..compression.study import scheme_counts_learned

    candidates, learn_cum, test_cum, work = [], {}, {}, {}
    learn_nonzero = test_nonzero = 0
    for name, layer in study.layers.items():
        learned = layer.learned
        order, values = best_entries(learned, layer.map.ous("wpr"))
        candidates.append(LayerValues(name, layer.width_bytes, values.astype(np.int64)))
        learn_cum[name] = np.concatenate([[0], np.cumsum(learned.count[order],
                                                         dtype=np.int64)])
        learn_nonzero += int(learned.count[learned.key != 0].sum())
        tested = layer.tested
        if tested is not None:
            counts = counts_in(learned.band[order], learned.key[order], tested)
            test_cum[name] = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
            test_nonzero += int(tested.count[tested.key != 0].sum())
        work[name] = float(scheme_counts_learned(layer.map, learned))
    return candidates, learn_cum, test_cum, work, (learn_nonzero, test_nonzero)


def counts_in(band: np.ndarray, key: np.ndarray, histogram: PatternCounts) -> np.ndarray:
    """How often each ``(band[i], key[i])`` occurs in ``histogram`` (0 when absent).

    Keys are replaced by their rank among all keys present so that ``band x ranks + rank``
    is an exact int64 sort key (patterns of wide OUs are 64-bit fingerprints, which would
    not fit beside the band); the histogram is sorted by band then key, so by this too.
    """
    if len(band) == 0 or len(histogram.band) == 0:
        return np.zeros(len(band), dtype=np.int64)
    keys = np.unique(np.concatenate([key, histogram.key]))
    width = np.int64(len(keys))
    probe = band.astype(np.int64) * width + np.searchsorted(keys, key)
    table = histogram.band.astype(np.int64) * width + np.searchsorted(keys, histogram.key)
    index = np.minimum(np.searchsorted(table, probe), len(table) - 1)
    return np.where(table[index] == probe, histogram.count[index], 0).astype(np.int64)


def byte_allocations(study: Study, tables: LearnedTables, capacities: list[int], method: str,
                     cache: Cache | None = None) -> list[Allocation]:
    """The allocation of a byte method (MODEL.md's knapsack ``exact`` or a baseline) at each
    of ``capacities``, with every layer's entries held once (:func:`reallocate` without
    copies per router): ``exact`` solves one table for all of them
    (:func:`~cr2des.compression.allocation.allocate_many`).

    With a ``cache``, each capacity's allocation is found there when a run on the same
    candidate entries and work computed it (a sweep's curve task computes those of all
    its points at once); addressed by the method, the capacity, and every layer's name,
    entry width, entry values and work, which are all an allocation reads."""
    candidates, _, _, work, _ = tables
    found: dict[int, Allocation] = {}
    keys: dict[int, str] = {}
    if cache is not None:
        content = [(c.name, c.width_bytes, c.values, work[c.name]) for c in candidates]
        for capacity in dict.fromkeys(int(c) for c in capacities):
            keys[capacity] = key = cache.key("allocation", method, capacity, content)
            hit = cache.load(key)
            if hit is not None:
                found[capacity] = allocation_of(candidates, method, capacity,
                                                [int(k) for k in hit[0]["entries"]])
    missing = [c for c in dict.fromkeys(int(c) for c in capacities) if c not in found]
    for capacity, allocation in zip(missing, allocate_many(candidates, missing, method,
                                                           work=work), strict=True):
        found[capacity] = allocation
        if capacity in keys and cache is not None:
            cache.store(keys[capacity], {"entries": np.array(
                [allocation.entries[c.name] for c in candidates], dtype=np.int64)},
                {"method": method, "capacity_bytes": capacity})
    return [found[int(c)] for c in capacities]


def alloc_methods(study: Study, tables: LearnedTables | None = None,
                  cache: Cache | None = None) -> dict[str, Any]:
    """Every allocation method on the study's learned tables and capacity: bytes per layer
    and the hit rate on the learning images (no testing run; ``--compare-alloc`` adds one).
    With entries held once, the byte methods' allocations come from ``cache`` when found
    there (:func:`byte_allocations`)."""
    tables = tables or learned_tables(study)
    _, learn_cum, test_cum, _, (learn_nonzero, test_nonzero) = tables
    capacity = int(study.allocation.capacity_bytes)
    out = {}
    for method in ALLOCS:
        if method == study.allocation.method:
            allocation = study.allocation
        elif method in METHODS and not copies_per_router(study.arch):
            allocation = byte_allocations(study, tables, [capacity], method, cache)[0]
        else:
            allocation = reallocate(study, capacity, method)
        out[method] = {**allocation.to_dict(),
                       "hit_rate_learn": _rate(learn_cum, allocation.entries, learn_nonzero),
                       "hit_rate_test": (_rate(test_cum, allocation.entries, test_nonzero)
                                         if test_cum else None)}
    return out


def _rate(cumulative: Mapping[str, np.ndarray], entries: Mapping[str, int], nonzero: int
          ) -> float:
    hits = sum(int(cumulative[name][k]) for name, k in entries.items())
    return hits / nonzero if nonzero else 0.0


def alloc_comparison(study: Study, sims: Mapping[str, Mapping[str, SimResult]],
                     dense: SimResult | None) -> dict[str, Any]:
    """The allocation methods side by side: bytes per layer, hit rates and, when simulated,
    the cr2 scheme's timing under each (``sims[method]["cr2"]``)."""
    out = {}
    for s in (study, *study.alternatives.values()):
        method = s.allocation.method
        learn, test = s.hit_rates()
        totals = s.totals("cr2")
        entry: dict[str, Any] = {
            **s.allocation.to_dict(), "hit_rate_learn": learn, "hit_rate_test": test,
            "cr2": {"ou_computes": totals.ou_computes, "buffer_reads": totals.buffer_reads,
                    "adc_conversions": totals.adc_conversions}}
        result = sims.get(method, {}).get("cr2")
        if result is not None:
            entry["cr2"].update({
                "latency_s": result.latency_s, "throughput_ips": result.throughput_ips,
                "makespan_s": result.makespan_s, "partial": result.partial,
                "speedup": (dense.latency_s / result.latency_s
                            if dense is not None and result.latency_s and not result.partial
                            else None)})
        out[method] = entry
    return {m: out[m] for m in ALLOCS if m in out}


def study_parts(study: Study, cache: Cache | None = None) -> dict[str, Any]:
    """The parts of a model's record that no simulation changes: the IPR hit-rate curve,
    the allocation methods' hits and the chip's area.  :func:`run_record
    <cr2des.results.pipeline.run_record>` computes them while the simulations run."""
    from ..costs.area_power import area_power

    tables = learned_tables(study)
    return {"ipr_curve": ipr_curve(study, cache=cache, tables=tables),
            "alloc_methods": alloc_methods(study, tables, cache),
            "area_power": chip_area(area_power(study.arch))}


def model_record(study: Study, sims: Mapping[str, SimResult],
                 estimates: Mapping[str, Estimate], *, sim_meta: Mapping[str, Any],
                 alt_sims: Mapping[str, Mapping[str, SimResult]] | None = None,
                 cache: Cache | None = None, parts: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """One model's record (the module docstring): everything the report, the CSVs and the
    figures read.  ``cache`` keeps the hit-rate curve (:func:`cached_curve`); ``parts`` are
    :func:`study_parts` when already computed."""
    data = study.to_dict()
    data = {"schema_version": RESULTS_SCHEMA_VERSION, **data}
    for scheme, entry in data["schemes"].items():
        entry["analytic"] = estimates[scheme].to_dict()
        if scheme in sims:
            result = sims[scheme]
            entry.update(result.to_dict())
            dense = sims.get("dense")
            entry["speedup"] = (dense.latency_s / result.latency_s
                                if dense is not None and result.latency_s
                                and not result.partial else None)
    data["sim"] = dict(sim_meta)
    times = layer_times(study, sims)
    for layer in data["layers"]:
        name = layer["name"]
        layer["replicas"] = {s: p.layers[name].replicas for s, p in study.placements.items()}
        if sims:
            layer["time_s"] = times[name]
    add_energy(data, study, sims, estimates)
    parts = parts if parts is not None else study_parts(study, cache)
    data["ipr_curve"] = parts["ipr_curve"]
    all_sims = dict(alt_sims or {})
    all_sims.setdefault(study.allocation.method, sims)
    data["alloc_compare"] = alloc_comparison(study, all_sims, sims.get("dense"))
    data["alloc_methods"] = parts["alloc_methods"]
    data["area_power"] = parts["area_power"]
    return data


def scheme_energies(study: Study, sims: Mapping[str, SimResult],
                    estimates: Mapping[str, Estimate]) -> dict[str, Any]:
    """Energy and area of every scheme, timed by its simulation (steady-state time per
    image, network flits) or, without one, by the closed-form estimate."""
    from ..costs.energy import evaluate_energy

    out = {}
    for scheme, est in estimates.items():
        sim = sims.get(scheme)
        if sim is not None and not sim.partial and sim.throughput_ips > 0:
            flits = {stage: n for (stage, action), n in sim.stats.actions.items()
                     if action == "flit_hops"}
            out[scheme] = evaluate_energy(study, scheme,
                                          seconds_per_image=1.0 / sim.throughput_ips,
                                          latency_s=sim.latency_s, flit_hops=flits)
        else:
            out[scheme] = evaluate_energy(study, scheme, seconds_per_image=est.bottleneck_s,
                                          latency_s=est.latency_s)
    return out


def add_energy(data: dict[str, Any], study: Study, sims: Mapping[str, SimResult],
               estimates: Mapping[str, Estimate]) -> None:
    """Energy per scheme and per layer, the time it was charged over, and the assumed
    numbers of the architecture, into a record."""
    from ..costs.energy import assumed_numbers

    energies = scheme_energies(study, sims, estimates)
    dense_energy = energies["dense"].energy_j
    for scheme, result in energies.items():
        entry = data["schemes"][scheme]
        entry.update(result.to_dict())
        entry["energy_by_layer_j"] = dict(result.energy_by_layer_j)
        entry["energy_saving"] = dense_energy / result.energy_j if result.energy_j else None
    for layer in data["layers"]:
        layer["energy_j"] = {s: energies[s].energy_by_layer_j[layer["name"]]
                             for s in energies}
    data["energy_time"] = ("event simulation" if sims and not any(r.partial for r in
                                                                   sims.values())
                           else "closed-form estimate (no network energy)")
    data["assumed"] = assumed_numbers(study.arch)


def chip_area(ap: AreaPower) -> dict[str, Any]:
    """The chip's area and power, and its area by component: each PE component times the
    chip's PEs, each tile component times its tiles, the routers and off-chip links once."""
    instances = {"pe": ap.tiles * ap.pes_per_tile, "tile": ap.tiles, "chip": 1}
    by_component: dict[str, float] = {}
    for c in ap.components:
        if (c.level, c.name) in (("tile", "pe"), ("tile", "router"), ("chip", "tile")):
            continue  # subtotals and the router share, counted once at chip level
        by_component[f"{c.level}.{c.name}"] = c.area_mm2 * instances[c.level]
    return {"chip_area_mm2": ap.chip.area_mm2, "chip_power_w": ap.chip.power_w,
            "area_by_component_mm2": by_component,
            "components": [c.to_dict() for c in ap.components]}


def document(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The results document of one or several models (module docstring)."""
    if len(records) == 1:
        return records[0]
    return {"schema_version": RESULTS_SCHEMA_VERSION, "models": records,
            "summary": summary_rows(records)}


def records_of(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model records of a results document (one or several models)."""
    if not isinstance(doc, Mapping):
        raise ResultsError("not a cr2des results document: expected a JSON object")
    version = doc.get("schema_version")
    if version is None:
        raise ResultsError("not a cr2des results document: no schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        raise ResultsError(f"results schema_version {version!r}; this cr2des reads "
                           f"{RESULTS_SCHEMA_VERSION}")
    if "models" in doc:
        records = doc["models"]
        if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
            raise ResultsError("models: expected a list of model records")
        return list(records)
    if "schemes" not in doc or "layers" not in doc:
        raise ResultsError("not a cr2des results document: no schemes or layers")
    return [dict(doc)]


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json``; errors name the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        records_of(doc)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results: {exc}") from None
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return doc


# ----------------------------------------------------------------------------- tables
def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def flatten(entry: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of ``entry`` and of its nested dicts, keyed by dotted names; lists are left
    out (they have their own tables or figures)."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif _scalar(value):
            out[name] = value
    return out


def model_name(record: Mapping[str, Any]) -> str:
    return str(record["workload"]["name"])


def scheme_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``schemes.csv``: one row per model and scheme."""
    rows = []
    for record in records_of(doc):
        for scheme, entry in record["schemes"].items():
            rows.append({"model": model_name(record), "arch": record["arch"]["name"],
                         "scheme": scheme, **flatten(entry)})
    return rows


#: per-layer, per-scheme fields of ``layers.csv`` beside the scheme's counts
_LAYER_FIELDS = ("crossbars", "replicas", "time_s", "energy_j")


def layer_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``layers.csv``: one row per model, crossbar layer and scheme."""
    rows = []
    for record in records_of(doc):
        alloc = record.get("alloc_methods", {})
        for index, layer in enumerate(record["layers"]):
            name = layer["name"]
            common = {"model": model_name(record), "index": index, "layer": name,
                      "bands": layer["bands"], "entry_bytes": layer["entry_bytes"],
                      "entries": layer["entries"],
                      "buffer_bytes": record["alloc"]["bytes_per_layer"].get(name, 0),
                      "hit_rate_learn": layer["hit_rate_learn"],
                      "hit_rate_test": layer["hit_rate_test"]}
            for method, entry in alloc.items():
                common[f"buffer_bytes.{method}"] = entry["bytes_per_layer"].get(name, 0)
            for scheme, counts in layer["schemes"].items():
                row = {**common, "scheme": scheme}
                for key in _LAYER_FIELDS:
                    value = layer.get(key)
                    if isinstance(value, Mapping):
                        row[key] = value.get(scheme)
                row.update(flatten(counts))
                rows.append(row)
    return rows


def summary_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model: the answer in a line (cr2 against dense)."""
    rows = []
    for record in records:
        schemes = record["schemes"]
        dense, cr2 = schemes.get("dense", {}), schemes.get("cr2", {})
        rows.append({
            "model": model_name(record), "arch": record["arch"]["name"],
            "weights": "synthetic" if record["weights"]["synthetic"] else "real",
            "dense_latency_s": dense.get("latency_s"), "cr2_latency_s": cr2.get("latency_s"),
            "cr2_speedup": cr2.get("speedup"),
            "cr2_throughput_ips": cr2.get("throughput_ips"),
            "cr2_throughput_precision": (cr2.get("steady") or {}).get("precision"),
            "cr2_throughput_converged": (cr2.get("steady") or {}).get("converged"),
            "cr2_energy_j": cr2.get("energy_j"), "cr2_energy_saving": cr2.get("energy_saving"),
            "cr2_crossbars": cr2.get("crossbars"), "dense_crossbars": dense.get("crossbars"),
            "hit_rate_learn": record["ipr"]["hit_rate_learn"],
            "hit_rate_test": record["ipr"]["hit_rate_test"],
        })
    return rows


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV; the header is the union of the rows' keys in order of first use; absent
    and ``None`` values are empty cells."""
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n",
                            restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def write_folder(doc: Mapping[str, Any], out: str | Path) -> list[Path]:
    """Write ``results.json``, ``schemes.csv`` and ``layers.csv`` into ``out``, each
    atomically; returns the paths written."""
    out = Path(out)
    written = []
    for name, text in (("results.json", strict_json(doc) + "\n"),
                       ("schemes.csv", csv_text(scheme_rows(doc))),
                       ("layers.csv", csv_text(layer_rows(doc)))):
        atomic_write_text(out / name, text)
        written.append(out / name)
    if "models" in doc:
        atomic_write_text(out / "summary.csv", csv_text(list(doc["summary"])))
        written.append(out / "summary.csv")
    return written
