"""The answer first: the console headline of a study, read from its results record.

Per scheme: latency, steady-state throughput, energy per inference, area, speedup and
energy saving against ``dense``, and one line on what limits it.  The headline says
whether the weights were real or synthetic (a synthetic run is flagged in its title) and
which images were learned and which tested, with the IPR hit rate on each.  A field the
record does not carry is printed as ``n/a (not computed)``, never as a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from ..description.units import format_bytes, format_si
from ..results.record import NOT_COMPUTED


def _value(entry: Mapping[str, Any], key: str, unit: str) -> str:
    value = entry.get(key)
    if value is None:
        return NOT_COMPUTED
    return format_si(float(value), unit)


def _ratio(value: Any) -> str:
    return NOT_COMPUTED if value is None else f"{float(value):.2f}x"


def imprecision(steady: Mapping[str, Any] | None) -> str:
    """How imprecise a streamed throughput is: ``""`` when its steady state was measured to
    the tolerance (or not streamed), else `` ±48%`` or `` ±7.1%`` (the 95 % confidence
    half-width at which its budget stopped it; below 10 %, two significant digits, so
    that a tolerance under 1 % does not print as 0 %) or `` ±?`` (too few completions for
    a precision)."""
    if not steady or not steady.get("streamed") or steady.get("converged"):
        return ""
    precision = steady.get("precision")
    if precision is None:
        return " ±?"
    return f" ±{precision:.0%}" if precision >= 0.1 else f" ±{100 * precision:.2g}%"


#: the footnote of a table whose throughputs carry :func:`imprecision`
IMPRECISION_NOTE = ("±: a throughput whose stream stopped on its budget before its precision "
                    "reached the tolerance, with the 95 % confidence half-width it had (±?: "
                    "too few completions for one); energy and power use that throughput "
                    "(leakage per image). --stream-rows streams longer.")


def throughput_text(entry: Mapping[str, Any], unit: str = " img/s") -> str:
    """A scheme's steady-state throughput with its :func:`imprecision`."""
    throughput = entry.get("throughput_ips")
    if throughput is None:
        return NOT_COMPUTED
    return f"{float(throughput):,.1f}{unit}{imprecision(entry.get('steady'))}"


def imprecise(entries: Any) -> bool:
    """Whether any of ``entries`` (scheme entries of a record) has an imprecise throughput."""
    return any(imprecision(e.get("steady")) for e in entries if e.get("throughput_ips")
               is not None)


def _saving(entry: Mapping[str, Any], dense: Mapping[str, Any]) -> Any:
    """``energy_saving`` when the record has it, else dense energy over this energy."""
    if entry.get("energy_saving") is not None:
        return entry["energy_saving"]
    if entry.get("energy_j") and dense.get("energy_j"):
        return dense["energy_j"] / entry["energy_j"]
    return None


def _area(entry: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    for key in ("area_mm2", "chip_area_mm2"):
        if entry.get(key) is not None:
            return f"{entry[key]:.4g} mm²"
    chip = record.get("area_power", {}).get("chip_area_mm2")
    return f"{chip:.4g} mm² (chip)" if chip is not None else NOT_COMPUTED


def limiting_factor(entry: Mapping[str, Any]) -> str:
    """One line on what limits a scheme: the simulation's bottleneck stage and its cause
    when the record has them, else the closed-form bottleneck stage and the largest stall
    the simulation attributed."""
    bottleneck = entry.get("bottleneck")
    if isinstance(bottleneck, Mapping) and bottleneck.get("stage"):
        text = f"{bottleneck['stage']}"
        if bottleneck.get("cause"):
            text += f": {bottleneck['cause']}"
        return text
    analytic = entry.get("analytic") or {}
    stage = analytic.get("bottleneck_stage")
    if not stage:
        return NOT_COMPUTED
    text = f"{stage}, {format_si(analytic['bottleneck_s'], 's')}/image (closed form)"
    waits = [s for s in entry.get("top_stalls") or [] if s["stage"] == stage]
    if waits:
        top = waits[0]
        text += f"; waits on {top['cause']} ({top['resource']})"
    elif "top_stalls" in entry:
        text += "; compute-bound (no waits there)"
    return text


def answer_table(record: Mapping[str, Any]) -> Table:
    synthetic = record["weights"]["synthetic"]
    title = (f"{record['workload']['name']} on {record['arch']['name']}: "
             f"{len(record['images']['test']['names'])} testing images")
    if synthetic:
        title = f"[bold yellow]SYNTHETIC WEIGHTS[/] — {title}"
    table = Table(title=title, title_justify="left",
                  caption=IMPRECISION_NOTE if imprecise(record["schemes"].values()) else None,
                  caption_justify="left")
    for col in ("scheme", "latency", "throughput", "energy / inference", "area", "speedup",
                "energy saving", "limited by"):
        table.add_column(col, justify="left" if col in ("scheme", "limited by") else "right",
                         overflow="fold")
    schemes = record["schemes"]
    dense = schemes.get("dense", {})
    for scheme, entry in schemes.items():
        partial = " (partial)" if entry.get("partial") else ""
        table.add_row(
            scheme, _value(entry, "latency_s", "s") + partial, throughput_text(entry),
            _value(entry, "energy_j", "J"), _area(entry, record),
            "1.00x" if scheme == "dense" and entry.get("latency_s") else
            _ratio(entry.get("speedup")),
            "1.00x" if scheme == "dense" and entry.get("energy_j") else
            _ratio(_saving(entry, dense)),
            limiting_factor(entry))
    return table


def print_answer(record: Mapping[str, Any], console: Console) -> None:
    """The headline of one model's study (module docstring)."""
    weights = record["weights"]
    if weights["synthetic"]:
        console.print(f"[bold yellow]warning: synthetic weights[/] — {weights['description']}."
                      " Weight sparsity and repetition are those of random weights, not of a "
                      "trained network; treat the savings below as a mechanism check.")
    console.print(answer_table(record))
    console.print(f"[{'bold yellow' if weights['synthetic'] else 'green'}]weights:[/] "
                  f"{'synthetic' if weights['synthetic'] else 'real'} — "
                  f"{weights['description']}")
    images, ipr, alloc = record["images"], record["ipr"], record["alloc"]
    for key, label, rate in (("learn", "learned on", ipr["hit_rate_learn"]),
                             ("test", "tested on", ipr["hit_rate_test"])):
        part = images[key]
        source = part.get("source", images.get("source"))
        console.print(f"{label} {len(part['names'])} images from {source} "
                      f"(IPR hit rate {rate:.1%}): {', '.join(part['names'])}")
    console.print(f"IPR buffer: {alloc['method']} allocation of "
                  f"{format_bytes(alloc['capacity_bytes'])}, "
                  f"{format_bytes(alloc['used_bytes'])} used.")
    compare = record.get("alloc_compare", {})
    if len(compare) > 1:
        console.print(alloc_table(record))
    for number in record.get("assumed", []):
        text = number if isinstance(number, str) else ", ".join(
            f"{k}: {v}" for k, v in number.items())
        console.print(f"[dim]assumed: {text}[/]")


def alloc_table(record: Mapping[str, Any]) -> Table:
    """The allocation methods side by side on the same learned tables."""
    table = Table(title="IPR allocation methods on the same learned tables",
                  title_justify="left")
    for col in ("method", "bytes used", "layers with entries", "hit rate SL", "hit rate ST",
                "cr2 OU activations", "cr2 latency", "cr2 speedup"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for method, entry in record["alloc_compare"].items():
        cr2 = entry["cr2"]
        table.add_row(
            method + (" (run)" if method == record["alloc"]["method"] else ""),
            format_bytes(entry["used_bytes"]),
            f"{sum(1 for v in entry['entries'].values() if v)} of {len(entry['entries'])}",
            f"{entry['hit_rate_learn']:.1%}", f"{entry['hit_rate_test']:.1%}",
            f"{cr2['ou_computes']:,}", _value(cr2, "latency_s", "s"),
            _ratio(cr2.get("speedup")))
    return table


def print_models_summary(rows: list[Mapping[str, Any]], console: Console) -> None:
    """One row per model: cr2 against dense."""
    # each row's cr2 throughput as a scheme entry (:func:`throughput_text`)
    cr2 = [{"throughput_ips": row.get("cr2_throughput_ips"), "steady": {
        "streamed": True, "converged": row.get("cr2_throughput_converged"),
        "precision": row.get("cr2_throughput_precision")}} for row in rows]
    table = Table(title="Summary: cr2 against dense, one row per model", title_justify="left",
                  caption=IMPRECISION_NOTE if imprecise(cr2) else None, caption_justify="left")
    for col in ("model", "weights", "dense latency", "cr2 latency", "speedup",
                "cr2 throughput", "cr2 energy", "energy saving", "hit rate SL", "hit rate ST"):
        table.add_column(col, justify="left" if col in ("model", "weights") else "right")
    for row, entry in zip(rows, cr2, strict=True):
        table.add_row(
            row["model"],
            f"[bold yellow]{row['weights']}[/]" if row["weights"] == "synthetic"
            else row["weights"],
            _value(row, "dense_latency_s", "s"), _value(row, "cr2_latency_s", "s"),
            _ratio(row.get("cr2_speedup")),
            throughput_text(entry),
            _value(row, "cr2_energy_j", "J"), _ratio(row.get("cr2_energy_saving")),
            f"{row['hit_rate_learn']:.1%}", f"{row['hit_rate_test']:.1%}")
    console.print(table)
