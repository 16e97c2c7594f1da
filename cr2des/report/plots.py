"""The study's figures, drawn from a results document alone (``cr2des plot results.json``).

Every figure reads only the JSON (:mod:`cr2des.results.record`), so a folder can be redrawn, or
restyled, without running anything again.  matplotlib is an optional dependency (the
``plot`` extra) imported on first use with the non-interactive Agg backend.  Each PNG is
written atomically.

Figures, per model (``<model>-<figure>.png``):

``layer-time``
    simulated time of each crossbar layer per image and replica, one line per scheme;
``layer-energy``
    energy of each crossbar layer per scheme (when the record carries per-layer energy);
``ou-paths``
    where every column activation went, per scheme: pruned, skipped, served, computed,
    copied;
``alloc-bytes``
    pattern-buffer bytes per layer under each allocation method;
``area-energy``
    chip area by component, and energy per inference by component per scheme (when the
    record carries it);

and one for all models: ``ipr-hit-rate`` (IPR hit rate against buffer capacity).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import Cr2desError
from ..fileio import atomic_path
from ..results.record import load_document, model_name, records_of

#: scheme colours, the same in every figure
COLORS = {"dense": "#7f7f7f", "sparse": "#1f77b4", "wpr": "#ff7f0e", "cr2": "#2ca02c"}
PATHS = ("pruned", "skipped", "served", "computed", "copied")
PATH_COLORS = {"pruned": "#d9d9d9", "skipped": "#9ecae1", "served": "#2ca02c",
               "computed": "#d62728", "copied": "#ff7f0e"}


class PlotError(Cr2desError):
    """matplotlib is missing."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotError("figures need matplotlib: pip install 'cr2des[plot]' (or use "
                        "--no-plots)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def axes_labels(fig: Any) -> list[dict[str, str]]:
    """The title and axis labels of every axes of a figure."""
    return [{"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()}
            for ax in fig.axes]


def require_matplotlib() -> None:
    """Raise :class:`PlotError` now if figures cannot be drawn."""
    _pyplot()


def _save(fig: Any, path: Path) -> Path:
    """Write the PNG atomically; its ``Description`` text chunk holds the axes' labels as
    JSON, so that a reader (or a test) can tell what the figure shows without decoding it."""
    plt = _pyplot()
    metadata = {"Title": path.stem, "Software": "cr2des",
                "Description": json.dumps(axes_labels(fig))}
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return path


def _slug(record: Mapping[str, Any]) -> str:
    """The model's name as a file-name prefix (nothing but letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model_name(record)).lstrip(".") or "model"


def _title(record: Mapping[str, Any], what: str) -> str:
    text = f"{model_name(record)} on {record['arch']['name']}: {what}"
    return text + (" (synthetic weights)" if record["weights"]["synthetic"] else "")


def _layer_axis(ax: Any, names: list[str]) -> None:
    ax.set_xlabel("crossbar layer (index in network order)")
    if len(names) <= 24:
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=70, ha="right", fontsize=7)


# ----------------------------------------------------------------------------- figures
def _per_layer(record: Mapping[str, Any], key: str, ylabel: str, what: str) -> Any:
    """One line per scheme over the crossbar layers of ``layers[i][key][scheme]``."""
    plt = _pyplot()
    layers = record["layers"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = [layer["name"] for layer in layers]
    for scheme in record["schemes"]:
        ys = [layer[key].get(scheme) for layer in layers]
        ax.plot(range(len(names)), ys, marker="o", markersize=3, label=scheme,
                color=COLORS.get(scheme))
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    _layer_axis(ax, names)
    ax.set_title(_title(record, what))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def layer_time(record: Mapping[str, Any]) -> Any | str:
    layers = record["layers"]
    if not layers or "time_s" not in layers[0]:
        return "per-layer time: the record has no simulated time (engine analytic)"
    return _per_layer(record, "time_s", "busy time per image and replica (s)", "time per layer")


def layer_energy(record: Mapping[str, Any]) -> Any | str:
    layers = record["layers"]
    if not layers or not isinstance(layers[0].get("energy_j"), Mapping):
        return "per-layer energy: not computed (the record has no layers[].energy_j)"
    return _per_layer(record, "energy_j", "energy per inference (J)", "energy per layer")


def ou_paths(record: Mapping[str, Any]) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    schemes = list(record["schemes"])
    bottom = [0.0] * len(schemes)
    for path in PATHS:
        values = [record["schemes"][s]["columns"].get(path, 0) for s in schemes]
        ax.bar(schemes, values, bottom=bottom, label=path, color=PATH_COLORS[path])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("scheme")
    ax.set_ylabel("column activations (OU column x cycle)")
    ax.set_title(_title(record, f"OU work by path over {record['counts_over']}"))
    ax.legend(title="path", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def alloc_bytes(record: Mapping[str, Any]) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = [layer["name"] for layer in record["layers"]]
    methods = record.get("alloc_methods") or {record["alloc"]["method"]: record["alloc"]}
    width = 0.8 / max(1, len(methods))
    for i, (method, entry) in enumerate(methods.items()):
        xs = [x + (i - (len(methods) - 1) / 2) * width for x in range(len(names))]
        ax.bar(xs, [entry["bytes_per_layer"].get(n, 0) for n in names], width=width,
               label=f"{method} ({entry['used_bytes']:,} B)")
    ax.set_ylabel("pattern-buffer bytes")
    _layer_axis(ax, names)
    ax.set_title(_title(record, f"IPR buffer bytes per layer of "
                                f"{record['alloc']['capacity_bytes']:,} B"))
    ax.legend(title="allocation")
    return fig


def area_energy(record: Mapping[str, Any]) -> Any:
    plt = _pyplot()
    schemes = list(record["schemes"])
    energy = {s: record["schemes"][s].get("energy_by_component_j") for s in schemes}
    has_energy = all(isinstance(e, Mapping) for e in energy.values())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    per_scheme = {s: record["schemes"][s].get("area_by_component_mm2") for s in schemes}
    if all(isinstance(a, Mapping) for a in per_scheme.values()):
        _stacked(ax, schemes, per_scheme)  # type: ignore[arg-type]
        ax.set_xlabel("scheme")
    else:
        area = record["area_power"]["area_by_component_mm2"]
        _stacked(ax, ["chip"], {"chip": area})
        ax.set_xlabel("the chip (the same for every scheme)")
    ax.set_ylabel("area (mm²)")
    ax.set_title("area by component")
    ax = axes[1]
    if has_energy:
        _stacked(ax, schemes, energy)  # type: ignore[arg-type]
        ax.set_xlabel("scheme")
        ax.set_ylabel("energy per inference (J)")
        ax.set_title("energy by component")
    else:
        ax.set_xlabel("scheme")
        ax.set_ylabel("energy per inference (J)")
        ax.set_title("energy by component")
        ax.text(0.5, 0.5, "n/a (not computed)", ha="center", va="center",
                transform=ax.transAxes)
    fig.suptitle(_title(record, "area and energy by component"))
    return fig


def _stacked(ax: Any, columns: list[str], parts: Mapping[str, Mapping[str, float]]) -> None:
    components: dict[str, None] = {}
    for part in parts.values():
        components.update(dict.fromkeys(part))
    bottom = [0.0] * len(columns)
    for component in components:
        values = [float(parts[c].get(component, 0.0) or 0.0) for c in columns]
        if not any(values):
            continue
        ax.bar(columns, values, bottom=bottom, label=component)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.legend(fontsize=7, ncol=2)


def ipr_hit_rate(records: list[Mapping[str, Any]]) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for record in records:
        curve = record["ipr_curve"]
        name = model_name(record)
        keep = [i for i, c in enumerate(curve["capacity_bytes"]) if c > 0]
        xs = [curve["capacity_bytes"][i] for i in keep]
        line = ax.plot(xs, [curve["hit_rate_learn"][i] for i in keep], marker="o",
                       label=f"{name}: learning images ({curve['method']})")[0]
        test = curve.get("hit_rate_test")
        if test and all(test[i] is not None for i in keep):
            ax.plot(xs, [test[i] for i in keep], marker="s", linestyle="--",
                    color=line.get_color(), label=f"{name}: testing images")
        for tested in curve["tested"]:
            if tested["capacity_bytes"] > 0 and tested["method"] != curve["method"]:
                ax.scatter([tested["capacity_bytes"]], [tested["hit_rate_test"]], marker="x",
                           s=60, color=line.get_color(), zorder=3)
        if any(t["method"] != curve["method"] for t in curve["tested"]):
            ax.scatter([], [], marker="x", color=line.get_color(),
                       label=f"{name}: testing images, other allocation methods")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("total pattern-buffer capacity (bytes)")
    ax.set_ylabel("IPR hit rate (of non-zero OU input patterns)")
    ax.set_ylim(0, 1)
    ax.set_title("IPR hit rate against buffer capacity (allocated on the learned tables)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


#: per-model figures, in the order they are written
FIGURES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "layer-time": layer_time, "layer-energy": layer_energy, "ou-paths": ou_paths,
    "alloc-bytes": alloc_bytes, "area-energy": area_energy,
}


def write_plots(doc: Mapping[str, Any], out: str | Path) -> tuple[list[Path], list[str]]:
    """Draw every figure of ``doc`` into ``out``; returns the files written and, for each
    figure that could not be drawn from the document, why."""
    out = Path(out)
    records = records_of(doc)
    written, skipped = [], []
    for record in records:
        for name, draw in FIGURES.items():
            fig = draw(record)
            if isinstance(fig, str):
                skipped.append(f"{_slug(record)}-{name}.png: {fig}")
                continue
            written.append(_save(fig, out / f"{_slug(record)}-{name}.png"))
    written.append(_save(ipr_hit_rate(records), out / "ipr-hit-rate.png"))
    return written, skipped


def plot_file(results: str | Path, out: str | Path | None = None
              ) -> tuple[list[Path], list[str]]:
    """Redraw the figures of a ``results.json`` (into its folder unless ``out`` is given)."""
    doc = load_document(results)
    return write_plots(doc, Path(out) if out is not None else Path(results).parent)
