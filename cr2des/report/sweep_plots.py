"""Figures of a sweep, drawn from its ``points.jsonl`` alone (``cr2des plot OUT_DIR``).

``sweep-buffer.png``
    cr2's speedup and energy saving against dense as the pattern-buffer capacity grows,
    one line per model (points that vary the buffer);
``sweep-hit-rate.png``
    IPR hit rate on the testing images against the number of learning images, one line per
    number of testing images (points that vary SL);
``sweep-pareto.png``
    area against energy per inference of every point and scheme, with the Pareto front
    (no other design is both smaller and more frugal).

A figure whose quantities the records do not carry (a sweep that never varies the buffer,
records without energy) is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..results.sweep_runner import RECORDS, latest, read_records
from .plots import COLORS, _pyplot, _save


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in latest(records).values() if r.get("status") == "ok" and r.get("result")]


def _model(record: Mapping[str, Any]) -> str:
    return str(record["result"]["workload"]["name"])


def buffer_figure(records: list[dict[str, Any]]) -> Any | str:
    rows = []
    for r in records:
        result = r["result"]
        cr2 = result["schemes"]["cr2"]
        capacity = result.get("alloc", {}).get("capacity_bytes")
        if capacity is None or not any(k.endswith(".buffer") for k in r["values"]):
            continue
        rows.append((_model(r), capacity, cr2.get("speedup"), cr2.get("energy_saving")))
    if not rows:
        return "no point varies run.buffer"
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for model in sorted({m for m, *_ in rows}):
        series = sorted((c, s, e) for m, c, s, e in rows if m == model)
        caps = [c / 1024 for c, _, _ in series]
        left.plot(caps, [s if s is not None else float("nan") for _, s, _ in series],
                  marker="o", label=model)
        right.plot(caps, [e if e is not None else float("nan") for _, _, e in series],
                   marker="o", label=model)
    for ax, what in ((left, "cr2 speedup vs dense (latency)"),
                     (right, "cr2 energy saving vs dense")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("chip pattern-buffer capacity (KiB)")
        ax.set_ylabel(what)
        ax.set_title(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def hit_rate_figure(records: list[dict[str, Any]]) -> Any | str:
    rows = []
    for r in records:
        if not any(k.endswith(".sl") for k in r["values"]):
            continue
        images = r["result"]["images"]
        rows.append((len(images["learn"]["names"]), len(images["test"]["names"]),
                     r["result"]["ipr"]["hit_rate_test"], r["result"]["ipr"]["hit_rate_learn"]))
    if not rows:
        return "no point varies run.sl"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for st in sorted({st for _, st, _, _ in rows}):
        series = sorted((sl, test) for sl, s, test, _ in rows if s == st)
        ax.plot([sl for sl, _ in series], [100 * t for _, t in series], marker="o",
                label=f"ST = {st} (testing)")
    learn = sorted({(sl, h) for sl, _, _, h in rows})
    ax.plot([sl for sl, _ in learn], [100 * h for _, h in learn], linestyle="--", color="#555",
            label="on the learning images")
    ax.set_xlabel("learning images (SL)")
    ax.set_ylabel("IPR hit rate (% of non-zero OU cycles)")
    ax.set_title("IPR hit rate vs learning set size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both coordinates (smaller is better), by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(set(points)):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def pareto_figure(records: list[dict[str, Any]]) -> Any | str:
    rows = []
    for r in records:
        for scheme, entry in r["result"]["schemes"].items():
            area, energy = entry.get("area_mm2"), entry.get("energy_j")
            if area is not None and energy is not None:
                rows.append((scheme, float(area), float(energy)))
    if not rows:
        return "the records carry no area_mm2 and energy_j"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for scheme in sorted({s for s, _, _ in rows}):
        xs = [a for s, a, _ in rows if s == scheme]
        ys = [1e3 * e for s, _, e in rows if s == scheme]
        ax.scatter(xs, ys, s=18, color=COLORS.get(scheme), label=scheme, alpha=0.8)
    front = pareto_front([(a, e) for _, a, e in rows])
    ax.step([a for a, _ in front], [1e3 * e for _, e in front], where="post", color="black",
            linewidth=1, label="Pareto front")
    ax.set_xlabel("area of the used tiles (mm²)")
    ax.set_ylabel("energy per inference (mJ)")
    ax.set_title("area vs energy of every point and scheme")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


FIGURES = {"sweep-buffer": buffer_figure, "sweep-hit-rate": hit_rate_figure,
           "sweep-pareto": pareto_figure}


def plot_sweep(folder: str | Path, out: str | Path | None = None
               ) -> tuple[list[Path], list[str]]:
    """Draw the sweep figures of a results folder; returns files written and skip reasons."""
    folder = Path(folder)
    records = _ok(read_records(folder / RECORDS))
    target = Path(out) if out is not None else folder
    written, skipped = [], []
    for name, draw in FIGURES.items():
        fig = draw(records)
        if isinstance(fig, str):
            skipped.append(f"{name}.png: {fig}")
        else:
            written.append(_save(fig, target / f"{name}.png"))
    return written, skipped
