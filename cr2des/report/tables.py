"""Console reports (rich).  The only module besides the CLI that writes to the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ..costs.area_power import AreaPower
from ..description.spec import Arch, required_adc_bits
from ..description.units import format_bytes, format_si
from ..workloads.graph import Workload
from .headline import IMPRECISION_NOTE, imprecise, imprecision, throughput_text

if TYPE_CHECKING:
    from ..compression.profile import LayerProfile
    from ..compression.study import Study
    from ..compression.verify import LayerCheck
    from ..data.images import ImageSet
    from ..data.weights import QuantWeights
    from ..simulation.sim import Estimate, SimResult


def _si(value: float | None, unit: str) -> str:
    return "—" if value is None else format_si(value, unit)


def area_power_table(ap: AreaPower) -> Table:
    table = Table(title=f"Area and power: {ap.arch_name}", title_justify="left")
    for col, justify in (("level", "left"), ("component", "left"), ("count", "right"),
                         ("power", "right"), ("area (mm²)", "right"),
                         ("energy / action", "right"), ("action", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    level = None
    for c in ap.components:
        if level is not None and c.level != level:
            table.add_section()
        level = c.level
        table.add_row(c.level, c.name, f"{c.count:g}", _si(c.power_w, "W"), f"{c.area_mm2:.5g}",
                      _si(c.energy_per_action_j, "J"), c.action)
    table.add_section()
    for name, total, n in (("PE", ap.pe, 1), ("tile", ap.tile, 1), ("chip", ap.chip, 1)):
        table.add_row("total", name, f"{n}", _si(total.power_w, "W"), f"{total.area_mm2:.5g}",
                      "", "", style="bold")
    return table


def print_area_power(ap: AreaPower, console: Console) -> None:
    console.print(area_power_table(ap))
    console.print(
        f"{ap.tiles} tiles x {ap.pes_per_tile} PEs; {ap.routers} routers, each tile carrying "
        f"{ap.routers / ap.tiles:g} of a router."
    )


def arch_summary(arch: Arch) -> Table:
    pe = arch.chip.tile.pe
    xb = pe.crossbar
    net = arch.chip.network
    pb = arch.chip.tile.pattern_buffer
    table = Table(title=f"Architecture: {arch.name}", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [
        ("source", arch.source or "—"),
        ("chip", f"{arch.chip.tiles} tiles x {arch.chip.tile.pes} PEs x {xb.count} crossbars "
                 f"= {arch.crossbars_per_chip:,} crossbars"),
        ("crossbar", f"{xb.rows}x{xb.cols}, {xb.cell_bits}-bit cells, OU {xb.ou_rows}x{xb.ou_cols},"
                     f" {format_si(xb.read_latency_s, 's')} per OU read"),
        ("ADC", f"{pe.adc.count} per PE, {pe.adc.bits} bits (OU needs "
                f"{required_adc_bits(xb.ou_rows, xb.cell_bits, pe.dac.bits)}"
                f"{f' - {pe.adc.bit_saving} saved' if pe.adc.bit_saving else ''}), "
                f"{format_si(pe.adc.sample_rate_hz, 'S/s')}"),
        ("DAC", f"{pe.dac.bits}-bit: {arch.bit_planes} bit-planes per {arch.mapping.input_bits}-bit"
                f" input"),
        ("weights", f"{arch.mapping.weight_bits}-bit, {arch.mapping.weight_encoding} encoding, "
                    f"{arch.slices} slices, rows {arch.mapping.row_order}"),
        ("pattern buffer", "none" if pb is None else
         f"{format_bytes(pb.capacity_bytes)} x {arch.chip.tiles} tiles = "
         f"{format_bytes(arch.pattern_buffer_bytes)}, {pb.ports} ports"),
        ("network", f"{net.topology} {'x'.join(map(str, net.dims)) or f'{net.routers} routers'}, "
                    f"{net.concentration} tiles/router, {net.link_width_bits}-bit links @ "
                    f"{format_si(net.clock_hz, 'Hz')}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def workload_table(workload: Workload, *, crossbar_only: bool = False) -> Table:
    title = f"Workload: {workload.name}"
    if workload.variant:
        title += f" — {workload.variant}"
    table = Table(title=title, title_justify="left")
    for col, justify in (("#", "right"), ("layer", "left"), ("op", "left"), ("in", "left"),
                         ("out", "left"), ("K x N (groups)", "left"), ("MACs", "right"),
                         ("weights", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i, layer in enumerate(workload):
        if crossbar_only and not layer.is_crossbar:
            continue
        matrix = ""
        if layer.is_crossbar:
            k, n = layer.matrix_shape
            matrix = f"{k} x {n}" + (f" ({layer.groups})" if layer.groups > 1 else "")
        table.add_row(
            str(i), layer.name, layer.op,
            " + ".join("x".join(map(str, s)) for s in layer.in_shapes),
            "x".join(map(str, layer.shape)), matrix,
            f"{layer.macs:,}" if layer.macs else "", f"{layer.weights:,}" if layer.weights else "",
        )
    table.add_section()
    table.add_row("", "total", "", "", "", f"{len(workload.crossbar_layers)} crossbar layers",
                  f"{workload.total_macs:,}", f"{workload.total_weights:,}", style="bold")
    return table


def print_workload(workload: Workload, console: Console, *, crossbar_only: bool = False) -> None:
    console.print(workload_table(workload, crossbar_only=crossbar_only))
    console.print(f"{workload.total_macs / 1e9:.4g} GMAC and {workload.total_weights / 1e6:.4g} M "
                  f"weights per image (conv + fc).")
    for note in workload.notes:
        console.print(f"[yellow]note:[/] {note}")


def provenance(weights: QuantWeights, images: ImageSet, console: Console) -> None:
    """Say where weights and images came from; synthetic weights are flagged loudly."""
    style = "bold yellow" if weights.synthetic else "green"
    console.print(f"[{style}]weights:[/] {weights.describe()}")
    for note in weights.notes:
        console.print(f"  {note}")
    console.print(f"[green]images:[/] {images.describe()}: {', '.join(images.names)}")
    for warning in images.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def print_profile(profiles: list[LayerProfile], totals: dict[str, float], workload: Workload,
                  arch: Arch, weights: QuantWeights, images: ImageSet, console: Console) -> None:
    xb = arch.crossbar
    table = Table(title=f"Input patterns: {workload.name} on {arch.name} (OU {xb.ou_rows}x"
                        f"{xb.ou_cols}, {arch.dac_bits}-bit DAC)", title_justify="left")
    for col in ("layer", "K x N (g)", "vectors", "bands", "zero act.", "zero bits % (b0..b7)",
                "zero OU patterns", "distinct (band, pattern)", "distinct patterns",
                "top-16 share"):
        table.add_column(col, justify="left" if col in ("layer", "zero bits % (b0..b7)") else
                         "right")
    for p in profiles:
        table.add_row(
            p.name + (" (signed)" if p.signed else ""),
            f"{p.k} x {p.n}" + (f" ({p.groups})" if p.groups > 1 else ""),
            f"{p.vectors:,}", f"{p.bands:,}", f"{p.zero_activations:.1%}",
            " ".join(f"{100 * z:.0f}" for z in p.zero_bits), f"{p.zero_patterns:.1%}",
            f"{p.distinct_keys:,}", f"{p.distinct_patterns:,}", f"{p.top16_share:.1%}",
        )
    table.add_section()
    table.add_row("all layers", "", "", "", "", "", f"{totals['zero_patterns']:.1%}",
                  f"{int(totals['distinct_keys']):,}", "", f"{totals['top16_share']:.1%}",
                  style="bold")
    console.print(table)
    console.print(f"{int(totals['patterns']):,} OU input patterns over {len(profiles)} crossbar "
                  f"layers; 'top-16 share' is the share of non-zero patterns whose value is one "
                  f"of the layer's 16 most frequent.")
    provenance(weights, images, console)


def scheme_table(study: Study, data: dict[str, Any]) -> Table:
    table = Table(title=f"{study.workload.name} on {study.arch.name}: work per scheme over "
                        f"{data['counts_over']}", title_justify="left")
    for col in ("scheme", "crossbars", "PEs used", "OU activations", "fewer than dense",
                "skipped (zero in)", "WPR copies (cols)", "buffer reads", "ADC conversions"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for scheme, s in data["schemes"].items():
        reduction = s["ou_reduction"]
        table.add_row(scheme, f"{s['crossbars']:,}", f"{s['pes_used']:,}", f"{s['ou_computes']:,}",
                      f"{reduction:.2f}x" if reduction else "—", f"{s['skipped']:,}",
                      f"{s['wpr_copies']:,}", f"{s['buffer_reads']:,}",
                      f"{s['adc_conversions']:,}")
    return table


def layer_table(study: Study) -> Table:
    table = Table(title=f"Per layer: {study.workload.name} on {study.arch.name}",
                  title_justify="left")
    for col in ("layer", "bands", "crossbars dense/sparse/wpr", "OU dense", "OU cr2",
                "entries", "entry bytes", "hit rate SL", "hit rate ST"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for name, layer in study.layers.items():
        table.add_row(
            name, f"{layer.map.n_bands:,}",
            "/".join(f"{layer.map.crossbars(s):,}" for s in ("dense", "sparse", "wpr")),
            f"{layer.schemes['dense'].ou_computes:,}", f"{layer.schemes['cr2'].ou_computes:,}",
            f"{layer.entries:,}", f"{layer.width_bytes:,}",
            f"{layer.hit_rate_learn:.1%}" if layer.entries else "—",
            f"{layer.hit_rate_test:.1%}" if layer.entries else "—")
    return table


def print_study(study: Study, data: dict[str, Any], console: Console, *,
                layers: bool = False) -> None:
    """The study's tables; ``data`` is ``study.to_dict()``, computed once by the caller."""
    console.print(arch_summary(study.arch))
    if layers:
        console.print(layer_table(study))
    console.print(scheme_table(study, data))
    alloc, ipr = data["alloc"], data["ipr"]
    console.print(
        f"IPR: {alloc['method']} allocation of {format_bytes(alloc['capacity_bytes'])} "
        f"({format_bytes(alloc['used_bytes'])} used, "
        f"{sum(1 for v in alloc['entries'].values() if v)} of {len(alloc['entries'])} layers "
        f"hold entries); hit rate {ipr['hit_rate_learn']:.1%} on the learning images, "
        f"{ipr['hit_rate_test']:.1%} on the testing images (of non-zero OU input patterns).")
    console.print(f"learning images (SL): {', '.join(study.learn.names)}")
    console.print(f"testing images (ST): {', '.join(study.test.names)}")
    console.print(f"inputs: {study.test.inputs}")
    style = "bold yellow" if study.weights.synthetic else "green"
    console.print(f"[{style}]weights:[/] {study.weights.describe()}")
    for note in (*study.weights.notes, *study.workload.notes):
        console.print(f"[yellow]note:[/] {note}")
    for warning in study.test.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def print_verify(checks: list[LayerCheck], workload: Workload, arch: Arch,
                 weights: QuantWeights, images: ImageSet, console: Console) -> None:
    table = Table(title=f"Bit-exact OU decomposition: {workload.name} on {arch.name}",
                  title_justify="left")
    for col in ("layer", "scheme", "result", "OU activations", "WPR copies", "buffer reads",
                "skipped"):
        table.add_column(col, justify="left" if col in ("layer", "scheme", "result") else "right")
    for c in checks:
        table.add_row(c.layer, c.scheme, "[green]exact[/]" if c.ok else f"[red]{c.mismatch}[/]",
                      f"{c.ou_computes:,}", f"{c.wpr_copies:,}", f"{c.buffer_reads:,}",
                      f"{c.skipped:,}")
    console.print(table)
    bad = sum(not c.ok for c in checks)
    console.print(f"{len(checks) - bad} of {len(checks)} layer x scheme checks exact.")
    provenance(weights, images, console)


def print_timing(data: dict, sims: dict[str, SimResult], estimates: dict[str, Estimate],
                 console: Console) -> None:
    images = len(data["images"]["test"]["names"])
    table = Table(title=f"Timing: latency of one image through the empty pipeline, steady-state "
                        f"throughput (images streamed until the mean completion interval is "
                        f"known to its tolerance), makespan of the {images} testing images",
                  title_justify="left")
    columns = ["scheme"]
    if sims:
        columns += ["latency", "throughput (img/s)", "makespan", "speedup", "bottleneck",
                    "events", "wall"]
    columns += ["latency >=", "throughput <=", "bound set by"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("scheme", "bottleneck", "bound set by")
                         else "right")
    for scheme, est in estimates.items():
        row = [scheme]
        if sims:
            r = sims[scheme]
            speed = data["schemes"][scheme].get("speedup")
            bn = r.bottleneck
            row += [format_si(r.latency_s, "s") + (" (partial)" if r.partial else ""),
                    f"{r.throughput_ips:,.1f}{imprecision(r.steady)}",
                    format_si(r.makespan_s, "s"),
                    f"{speed:.2f}x" if speed else "—",
                    f"{bn.get('stage')} ({bn.get('cause')})", f"{r.events:,}",
                    f"{r.wall_s:.2f} s"]
        row += [format_si(est.latency_s, "s"), f"{est.throughput_ips:,.1f}",
                f"{est.bottleneck_stage} ({est.bottleneck_cause})"]
        table.add_row(*row)
    console.print(table)
    if any(imprecision(r.steady) for r in sims.values()):
        stream = data["sim"].get("stream") or {}
        console.print(IMPRECISION_NOTE + (
            f" This run's budget: {stream['rows']:,} rows, at most {stream['images']:,} "
            "images." if stream.get("rows") else ""))
    console.print(f"allocation: {data['alloc']['method']}; closed-form bounds assume no "
                  "contention, no network and unbounded inter-layer buffers")
    for scheme, r in sims.items():
        if r.partial:
            console.print(f"[bold red]{scheme}: partial result[/]: {r.reason}")
    if "cr2" in sims and sims["cr2"].stalls_by_stage:
        stalls = Table(title="Top stalls (cr2): where the pipeline waited", title_justify="left")
        for col in ("stage", "cause", "on", "waited (summed over replicas)"):
            stalls.add_column(col, justify="right" if col.startswith("waited") else "left")
        for stage, cause, resource, seconds in sims["cr2"].stalls_by_stage[:8]:
            stalls.add_row(stage, cause, resource, format_si(seconds, "s"))
        console.print(stalls)
    trace = data["sim"].get("trace")
    if trace:
        note = (f", aggregated into {trace['bin_us']:.3g} µs bins to stay small"
                if trace["aggregated"] else "")
        console.print(f"trace: {trace['path']} ({trace['events_written']:,} events from "
                      f"{trace['intervals']:,} intervals{note}); open it in ui.perfetto.dev")


def print_energy(data: dict[str, Any], console: Console) -> None:
    """Energy and area per scheme beside latency and throughput, and the assumed numbers
    they depend on."""
    table = Table(title=f"Energy and area per inference (time from the {data['energy_time']})",
                  title_justify="left", caption_justify="left",
                  caption=IMPRECISION_NOTE if imprecise(data["schemes"].values()) else None)
    for col in ("scheme", "latency", "throughput (img/s)", "energy", "saving", "power", "EDP",
                "area (used tiles)", "chip area", "largest components"):
        table.add_column(col, justify="left" if col in ("scheme", "largest components")
                         else "right")
    for scheme, s in data["schemes"].items():
        parts = sorted(s["energy_by_component_j"].items(), key=lambda kv: -kv[1])[:3]
        total = s["energy_j"] or 1.0
        latency = s.get("latency_s", s["analytic"]["latency_s"])
        throughput = (throughput_text(s, unit="") if "throughput_ips" in s
                      else f"{s['analytic']['throughput_ips']:,.1f}")
        saving = s["energy_saving"]
        table.add_row(scheme, format_si(latency, "s"), throughput,
                      format_si(s["energy_j"], "J"), f"{saving:.2f}x" if saving else "—",
                      format_si(s["power_w"], "W"), format_si(s["edp_js"], "Js"),
                      f"{s['area_mm2']:.4g} mm²", f"{s['chip_area_mm2']:.4g} mm²",
                      ", ".join(f"{k} {v / total:.0%}" for k, v in parts))
    console.print(table)
    for scheme, s in data["schemes"].items():
        for note in s.get("energy_notes", []):
            console.print(f"[yellow]{scheme}:[/] {note}")
    assumed = data.get("assumed", [])
    if assumed:
        console.print(f"Assumed numbers these results depend on ({len(assumed)}, from the "
                      f"architecture file):")
        for a in assumed:
            value = a["value"]
            shown = (format_si(value, a["unit"]) if isinstance(value, float) and a["unit"]
                     not in ("mm2", "B", "bit", "") else f"{value:g} {a['unit']}".strip())
            console.print(f"  {a['path']} = {shown}", highlight=False)


def print_sweep(outcome: Any, console: Console) -> None:
    """What a sweep did and where its results are."""
    console.print(f"sweep: {outcome.done} points done, {outcome.failed} failed, "
                  f"{outcome.resumed} already finished (of {outcome.total}) in "
                  f"{outcome.wall_s:.1f} s; cache: {outcome.cache_hits} hits, "
                  f"{outcome.cache_misses} computed", highlight=False)
    for error in outcome.errors[:10]:
        console.print(f"[red]failed[/] {error}", highlight=False)
    console.print(f"results: {outcome.out_dir}/points.jsonl, {outcome.out_dir}/summary.csv",
                  highlight=False)
