"""The ``cr2des`` command line.

Every subcommand prints a rich report by default and a JSON document with ``--json``.
Errors in the user's input print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from . import __version__
from .errors import Cr2desError, SpecError


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cmd_area_power(args: argparse.Namespace, console: Console) -> int:
    from .costs import area_power
    from .report import print_area_power
    from .spec import load_arch

    ap = area_power(load_arch(args.arch))
    if args.json:
        _print_json(ap.to_dict())
    else:
        print_area_power(ap, console)
    return 0


def cmd_workload(args: argparse.Namespace, console: Console) -> int:
    from .report import print_workload
    from .workload import load_workload

    workload = load_workload(args.model)
    if args.json:
        _print_json(workload.summary())
    else:
        print_workload(workload, console, crossbar_only=args.crossbar_only)
    return 0


def cmd_import(args: argparse.Namespace, console: Console) -> int:
    from .onnx_import import import_to_files

    workload, weights = import_to_files(args.model, args.output)
    console.print(f"wrote {args.output}: {len(workload)} layers, "
                  f"{len(workload.crossbar_layers)} crossbar layers, "
                  f"{workload.total_macs / 1e9:.4g} GMAC")
    if weights is not None:
        console.print(f"wrote {weights}: the model's weights (batch norms folded)")
    for note in workload.notes:
        console.print(f"[yellow]note:[/] {note}")
    return 0


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from .mapping import SCHEMES
    from .report import print_study, print_timing
    from .sim import SimOptions, estimate, simulate
    from .spec import load_arch
    from .study import StudyOptions, run_study
    from .trace import write_trace
    from .units import parse_quantity
    from .workload import load_workload

    arch = load_arch(args.arch)
    workload = load_workload(args.model)

    def quantity(option: str, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            return int(parse_quantity(value, "bytes"))
        except ValueError as exc:
            raise SpecError(f"{option}: {exc}") from None

    options = StudyOptions(data=_data_options(args), n_learn=args.sl, n_test=args.st,
                           capacity_bytes=quantity("--buffer", args.buffer), alloc=args.alloc)
    if args.max_events < 1:
        raise SpecError(f"--max-events must be >= 1, got {args.max_events}")
    with _Phases() as phases:
        study = run_study(workload, arch, options, progress=phases)
        estimates = {s: estimate(study, s) for s in SCHEMES}
        sims = {}
        if args.engine in ("event", "both"):
            sim_options = SimOptions(granularity=args.granularity, max_events=args.max_events,
                                     edge_buffer_bytes=quantity("--edge-buffer",
                                                                args.edge_buffer))
            for scheme in SCHEMES:
                phases("simulate", scheme)
                traced = args.trace is not None and scheme == args.trace_scheme
                sims[scheme] = simulate(study, scheme, dataclasses.replace(
                    sim_options, trace=traced))
    trace_info = None
    if args.trace is not None:
        trace_info = write_trace(args.trace, sims[args.trace_scheme].stats,
                                 title=f"{workload.name} on {arch.name}, {args.trace_scheme}")
    data = study.to_dict()
    for scheme in SCHEMES:
        entry = data["schemes"][scheme]
        entry["analytic"] = estimates[scheme].to_dict()
        if scheme in sims:
            result = sims[scheme]
            entry.update(result.to_dict())
            dense = sims["dense"]
            entry["speedup"] = (dense.latency_s / result.latency_s
                                if result.latency_s and not result.partial else None)
    if sims:
        data["sim"] = {"engine": args.engine, "granularity": args.granularity,
                       "events": sum(r.events for r in sims.values()),
                       "wall_s": sum(r.wall_s for r in sims.values()),
                       "partial": any(r.partial for r in sims.values()),
                       "trace": {"path": str(args.trace), **trace_info} if trace_info else None}
    else:
        data["sim"] = {"engine": args.engine, "granularity": None, "events": 0, "wall_s": 0.0,
                       "partial": False, "trace": None}
    if args.json:
        _print_json(data)
    else:
        print_study(study, data, console, layers=args.layers)
        print_timing(data, sims, estimates, console)
    return 0


def _reference_run(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    """Architecture, workload, weights, images and the reference run the options name."""
    from .datapath import prepare_weights, preprocessing, run_reference
    from .images import load_images
    from .spec import load_arch
    from .workload import load_workload

    arch = load_arch(args.arch)
    workload = load_workload(args.model)
    options = _data_options(args)
    weights = prepare_weights(workload, arch, options)
    images = load_images(options.images, args.n, prep=preprocessing(workload), seed=args.seed)
    with _Progress("reference run", len(workload)) as bar:
        run = run_reference(workload, arch, weights, images, progress=bar)
    return arch, workload, weights, images, run


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    from .report import print_verify
    from .study import learn_buffers
    from .verify import first_mismatch, verify_layer

    arch, workload, weights, images, run = _reference_run(args)
    learning = learn_buffers(workload, arch, weights, run, int(arch.pattern_buffer_bytes))
    checks = []
    with _Progress("verify", len(run.inputs)) as bar:
        for name, li in run.inputs.items():
            bar(name)
            checks.extend(verify_layer(li, weights.layers[name], arch, learning.maps[name],
                                       learning.buffers[name]))
    mismatch = first_mismatch(checks)
    if args.json:
        _print_json({"ok": mismatch is None, "first_mismatch": str(mismatch) if mismatch else None,
                     "layers": [{"layer": c.layer, "scheme": c.scheme, "ok": c.ok,
                                 "ou_computes": c.ou_computes, "wpr_copies": c.wpr_copies,
                                 "buffer_reads": c.buffer_reads, "skipped": c.skipped}
                                for c in checks]})
    else:
        print_verify(checks, workload, arch, weights, images, console)
    if mismatch is not None:
        Console(stderr=True).print(f"cr2des: verification failed: {mismatch}", markup=False,
                                   highlight=False, soft_wrap=True)
        return 1
    return 0


class _Progress:
    """A rich progress bar on stderr for one phase; silent when stderr is not a terminal."""

    def __init__(self, description: str, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[item]}"), TimeElapsedColumn(),
                            console=console, transient=True, disable=not console.is_terminal)
        self.task = self.bar.add_task(description, total=total, item="")

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, item: str) -> None:
        self.bar.update(self.task, advance=1, item=item)


class _Phases:
    """Progress for a multi-phase run: one bar per phase, advanced per layer."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                            TextColumn("{task.fields[item]}"), TimeElapsedColumn(),
                            console=console, transient=True, disable=not console.is_terminal)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Phases:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, phase: str, item: str) -> None:
        if phase not in self.tasks:
            for task in self.tasks.values():
                self.bar.update(task, visible=False)
            self.tasks[phase] = self.bar.add_task(phase, total=None, item="")
        self.bar.update(self.tasks[phase], item=item)


def _data_options(args: argparse.Namespace) -> Any:
    from .datapath import DataOptions

    return DataOptions(images=args.images, weights=args.weights, prune=args.prune,
                       prune_scope=args.prune_scope, seed=args.seed)


def cmd_profile(args: argparse.Namespace, console: Console) -> int:
    from .profile import layer_patterns, profile_layer, summarize
    from .report import print_profile

    arch, workload, weights, images, execution = _reference_run(args)
    profiles = []
    with _Progress("input patterns", len(execution.inputs)) as bar:
        for name, li in execution.inputs.items():
            bar(name)
            profiles.append(profile_layer(li, arch, layer_patterns(li, arch)))
    if args.json:
        _print_json({
            "workload": workload.name, "arch": arch.name,
            "weights": {"source": weights.source, "synthetic": weights.synthetic,
                        "description": weights.describe()},
            "images": {"source": images.source, "names": list(images.names),
                       "derived": list(images.derived), "warnings": list(images.warnings)},
            "ou": [arch.crossbar.ou_rows, arch.crossbar.ou_cols], "dac_bits": arch.dac_bits,
            "totals": summarize(profiles),
            "layers": [p.to_dict() for p in profiles],
        })
    else:
        print_profile(profiles, summarize(profiles), workload, arch, weights, images, console)
    return 0


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="cr2", help="architecture (default: cr2)")
    p.add_argument("--images", default="samples",
                   help="'samples' (scikit-image photographs), an image directory, or .npy/.npz")
    p.add_argument("--weights", default=None,
                   help="'synthetic', or a .pth/.npz/.onnx file (default: the workload's own "
                        "weights if it has any, else synthetic)")
    p.add_argument("--prune", type=float, default=0.0, metavar="SPARSITY",
                   help="magnitude-prune weights to this sparsity before quantization")
    p.add_argument("--prune-scope", choices=("layer", "global"), default="layer")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic weights and images")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cr2des",
        description="Discrete-event simulator of compressed ReRAM PIM accelerators (CR2).",
    )
    parser.add_argument("--version", action="version", version=f"cr2des {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace, Console], int], help_: str
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("area-power", cmd_area_power, "area, power and per-action energy of an architecture")
    p.add_argument("arch", help="architecture YAML, or a bundled name (isaac, cr2, tiny)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = add("workload", cmd_workload, "layer table of a zoo model, workload YAML or ONNX file")
    p.add_argument("model", help="zoo name (alexnet, vgg16, resnet50, googlenet, tiny), "
                                 "workload YAML or .onnx")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--crossbar-only", action="store_true", help="list only conv and fc layers")

    p = add("import", cmd_import, "convert an ONNX model into a workload YAML (+ weights .npz)")
    p.add_argument("model", type=Path, help="ONNX file")
    p.add_argument("-o", "--output", type=Path, required=True, help="workload YAML to write")

    p = add("profile", cmd_profile, "per-layer input sparsity and OU input-pattern statistics")
    p.add_argument("model", help="zoo name, workload YAML or .onnx")
    p.add_argument("--n", type=int, default=4, help="number of images (default: 4)")
    _add_data_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = add("run", cmd_run, "the study: every scheme's work, crossbars and IPR hit rates")
    p.add_argument("model", nargs="?", default="resnet50", help="workload (default: resnet50)")
    p.add_argument("--sl", type=int, default=4, help="learning images (default: 4)")
    p.add_argument("--st", type=int, default=4, help="testing images (default: 4)")
    p.add_argument("--alloc", default="time",
                   choices=("time", "exact", "uniform", "proportional", "greedy"),
                   help="pattern-buffer allocation among layers: time saved (default), or "
                        "the byte knapsack of OU activations saved (exact) and its baselines")
    p.add_argument("--buffer", default=None, metavar="BYTES",
                   help="total pattern-buffer capacity, e.g. 1MiB (default: the chip's)")
    p.add_argument("--engine", choices=("event", "analytic", "both"), default="event",
                   help="event simulation, closed-form bottleneck estimate, or both side by "
                        "side (default: event; the estimate is always in --json)")
    p.add_argument("--granularity", choices=("coarse", "fine"), default="coarse",
                   help="coarse: one event per output row per layer replica; fine: one per "
                        "OU activation (small networks only)")
    p.add_argument("--max-events", type=int, default=10_000_000,
                   help="stop a simulation after this many events (its report says partial)")
    p.add_argument("--edge-buffer", default=None, metavar="BYTES",
                   help="inter-layer buffer per layer input (default: an eDRAM share)")
    p.add_argument("--trace", type=Path, default=None, metavar="PATH",
                   help="write a Chrome trace-event JSON (Perfetto) of one scheme's run")
    p.add_argument("--trace-scheme", choices=("dense", "sparse", "wpr", "cr2"), default="cr2",
                   help="scheme to trace (default: cr2)")
    p.add_argument("--layers", action="store_true",
                   help="also print the per-layer table (crossbars, OU activations, IPR)")
    _add_data_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = add("verify", cmd_verify,
            "check bit-exactly that every layer's OU decomposition equals its integer matmul")
    p.add_argument("model", help="zoo name, workload YAML or .onnx")
    p.add_argument("--n", type=int, default=1, help="number of images (default: 1)")
    _add_data_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # tables piped to a file or a pager keep their columns instead of wrapping at 80
    console = Console(width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True)
    try:
        return int(args.func(args, console))
    except Cr2desError as exc:
        err.print(f"cr2des: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("cr2des: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
