"""The ``cr2des`` command line.

Every subcommand prints a rich report by default and a JSON document with ``--json``.
Errors in the user's input print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import Cr2desError, SpecError
from .fileio import Terminated, terminate_on_sigterm
from .simulation import (
    MAX_STREAM_IMAGES,
    MAX_STREAM_ROWS,
    MAX_TOLERANCE,
    STREAM_IMAGES,
    STREAM_ROWS,
    TOLERANCE,
)

#: documented maxima of the image-count options (docs/robustness.md); memory is checked too
MAX_IMAGES = 10_000
#: longest error line printed; longer messages are cut with an ellipsis
MAX_ERROR_CHARS = 2000

if TYPE_CHECKING:  # rich is imported where output is made, not for --version or --help
    from rich.console import Console


def _print_json(data: Any) -> None:
    """Strict JSON (no NaN or Infinity tokens; see :func:`cr2des.fileio.strict_json`)."""
    from .fileio import strict_json

    sys.stdout.write(strict_json(data) + "\n")


def _whole(option: str, lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: a whole number in [lo, hi] (``1e3`` is accepted as 1000)."""
    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not math.isfinite(value) or value != int(value):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {text}")
        return int(value)
    return parse


def _number(lo: float, hi: float, *, lo_in: bool, hi_in: bool) -> Callable[[str], float]:
    """argparse type: a number between ``lo`` and ``hi``, each bound included when its
    flag says so (NaN is refused by every comparison)."""
    interval = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}"
                                             ) from None
        if not ((lo <= value if lo_in else lo < value)
                and (value <= hi if hi_in else value < hi)):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value
    return parse


#: ``--prune``: a sparsity in [0, 1)
_fraction = _number(0.0, 1.0, lo_in=True, hi_in=False)
#: ``--tolerance``: a relative precision in (0, MAX_TOLERANCE]
_tolerance = _number(0.0, MAX_TOLERANCE, lo_in=False, hi_in=True)


def _byte_size(text: str) -> int:
    """argparse type of byte options: a whole, positive byte count with its unit."""
    from .description.units import MAX_BYTES, UnitError, parse_bytes

    try:
        value = parse_bytes(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 1 <= value <= MAX_BYTES:
        raise argparse.ArgumentTypeError(f"must be in [1B, {MAX_BYTES}B], got {text!r}")
    return value


def _console(**kwargs: Any) -> Console:
    """rich's console, whose broken pipe becomes the one-line error every command gives
    (rich itself exits with code 1 and no message).  rich is imported here, not at start-up."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return _Console(**kwargs)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other cr2des error."""

    def error(self, message: str) -> Any:
        # "argument --n: ..." -> "--n: ...", as every other error names its option
        text = _one_line(f"cr2des: error: {message.removeprefix('argument ')}")
        sys.stderr.write(text + "\n")
        raise SystemExit(2)


def cmd_area_power(args: argparse.Namespace, console: Console) -> int:
    from .costs.area_power import area_power
    from .description.spec import load_arch
    from .report.tables import print_area_power

    ap = area_power(load_arch(args.arch))
    if args.json:
        _print_json(ap.to_dict())
    else:
        print_area_power(ap, console)
    return 0


def cmd_workload(args: argparse.Namespace, console: Console) -> int:
    from .report.tables import print_workload
    from .workloads.load import load_workload

    workload = load_workload(args.model)
    if args.json:
        _print_json(workload.summary())
    else:
        print_workload(workload, console, crossbar_only=args.crossbar_only)
    return 0


def cmd_import(args: argparse.Namespace, console: Console) -> int:
    from .workloads.onnx_import import import_to_files

    workload, weights = import_to_files(args.model, args.output, _normalize(args.normalize))
    console.print(f"wrote {args.output}: {len(workload)} layers, "
                  f"{len(workload.crossbar_layers)} crossbar layers, "
                  f"{workload.total_macs / 1e9:.4g} GMAC")
    if workload.normalize_given:
        mean, std = workload.normalize.mean, workload.normalize.std
        console.print(f"input normalisation: mean {list(mean)}, std {list(std)}")
    else:
        console.print("[yellow]note:[/] no --normalize given: runs will assume ImageNet's "
                      "input mean and std (and say so)")
    if weights is not None:
        console.print(f"wrote {weights}: the model's weights (batch norms folded)")
    for note in workload.notes:
        console.print(f"[yellow]note:[/] {note}")
    return 0


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from .results.record import document, expand_models, write_folder

    models = expand_models(args.model)
    if args.trace is not None and args.trace == "" and args.out is None:
        raise SpecError("--trace without a path writes trace.json into --out DIR; give one")
    if args.out is not None and not args.no_plots:
        from .report.plots import require_matplotlib

        require_matplotlib()  # before minutes of simulation, not after
    cache = _run_cache(args.cache)
    runs = []
    written: list[Path] = []
    notes: list[str] = []
    with _Phases(models) as phases:
        for model in models:
            runs.append(_run_model(args, model, phases, multi=len(models) > 1, cache=cache))
        doc = document([record for record, *_ in runs])
        if args.out is not None:
            phases("write", str(args.out))
            written = write_folder(doc, args.out)
            if not args.no_plots:
                from .report.plots import write_plots

                phases("figures", str(args.out))
                plotted, skipped = write_plots(doc, args.out)
                written += plotted
                notes = [f"figure skipped: {reason}" for reason in skipped]
    if cache is not None:  # on stderr: the results are the same with and without it
        used = cache.stats
        print(f"cache {args.cache}: {used.hits} entries found, {used.misses} computed"
              + (f", {used.corrupt} corrupt (recomputed)" if used.corrupt else ""),
              file=sys.stderr)
    if args.json:
        _print_json(doc)
        return 0
    from .report.headline import print_answer, print_models_summary
    from .report.tables import print_energy, print_study, print_timing

    for record, study, sims, estimates in runs:
        print_answer(record, console)
        print_study(study, record, console, layers=args.layers)
        print_timing(record, sims, estimates, console)
        print_energy(record, console)
    if len(runs) > 1:
        print_models_summary(doc["summary"], console)
    if written:
        console.print(f"wrote {len(written)} files to {args.out}: "
                      + ", ".join(p.name for p in written))
        for note in notes:
            console.print(f"[yellow]note:[/] {note}")
    return 0


def _run_cache(folder: Path | None) -> Any:
    """``cr2des run --cache DIR``: the content-addressed cache of a sweep's points
    (:mod:`cr2des.compression.cache`), kept across runs; ``None`` without the option."""
    if folder is None:
        return None
    from .compression.cache import Cache, Memo

    if folder.exists() and not folder.is_dir():
        raise SpecError("--cache: not a folder", file=str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"--cache: cannot create the folder ({exc.strerror})",
                        file=str(folder)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError("--cache: the folder is not writable", file=str(folder))
    return Cache(folder, Memo())


def _run_model(args: argparse.Namespace, model: str, phases: _Phases, *, multi: bool,
               cache: Any = None) -> tuple[dict[str, Any], Any, dict[str, Any], dict[str, Any]]:
    """Study, simulate and record one model: ``(record, study, sims, estimates)``."""
    from .compression.study import StudyOptions
    from .data.budget import check_memory
    from .description.spec import load_arch
    from .results.pipeline import TimingOptions, run_record
    from .simulation.trace import write_trace
    from .workloads.load import load_workload

    arch = load_arch(args.arch)
    workload = load_workload(model)
    check_memory(workload, args.sl + args.st, "--sl/--st")
    phases.model(model, len(workload), len(workload.crossbar_layers))
    options = StudyOptions(data=_data_options(args), n_learn=args.sl, n_test=args.st,
                           capacity_bytes=args.buffer, alloc=args.alloc,
                           compare_alloc=_compare_methods(args.compare_alloc),
                           learn_images=args.learn_images, test_images=args.test_images)
    timing = TimingOptions(engine=args.engine, granularity=args.granularity,
                           max_events=args.max_events, edge_buffer_bytes=args.edge_buffer,
                           stream_rows=args.stream_rows, tolerance=args.tolerance,
                           stream_images=args.stream_images, in_flight=args.in_flight,
                           trace_scheme=args.trace_scheme if args.trace is not None else None,
                           jobs=args.jobs if args.jobs is not None else _cores())
    run = run_record(workload, arch, options, timing, progress=phases, cache=cache)
    if args.trace is not None and run.sims:
        trace_path = _trace_path(args, model, multi)
        info = write_trace(trace_path, run.sims[args.trace_scheme].stats,
                           title=f"{workload.name} on {arch.name}, {args.trace_scheme}")
        run.record["sim"]["trace"] = {"path": str(trace_path), **info}
    return run.record, run.study, run.sims, run.estimates


def _cores() -> int:
    from .simulation.parallel import default_jobs

    return default_jobs()


def _compare_methods(given: list[str] | None) -> tuple[str, ...]:
    """``--compare-alloc`` alone names every method; absent, none."""
    from .compression.study import ALLOCS

    if given is None:
        return ()
    return tuple(given) if given else ALLOCS


def _trace_path(args: argparse.Namespace, model: str, multi: bool) -> Path:
    """``--trace PATH``, or ``DIR/trace.json`` for ``--trace`` with ``--out DIR``; with
    several models the model's name goes before the suffix."""
    path = Path(args.trace) if args.trace else Path(args.out) / "trace.json"
    return path.with_name(f"{path.stem}-{model}{path.suffix}") if multi else path


def cmd_plot(args: argparse.Namespace, console: Console) -> int:
    from .report.plots import plot_file
    from .report.sweep_plots import plot_sweep
    from .results.sweep_runner import RECORDS

    results = Path(args.results)
    if results.is_dir() and (results / RECORDS).exists():
        written, skipped = plot_sweep(results, args.out)
    elif results.name == RECORDS:
        written, skipped = plot_sweep(results.parent, args.out)
    else:
        written, skipped = plot_file(results, args.out)
    console.print(f"wrote {len(written)} figures: " + ", ".join(str(p) for p in written))
    for reason in skipped:
        console.print(f"[yellow]note:[/] figure skipped: {reason}")
    return 0


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    from .report.tables import print_sweep
    from .results.sweep import expand, load_sweep
    from .results.sweep_runner import run_sweep

    sweep = load_sweep(args.sweep)
    points = expand(sweep)
    if args.workers is not None and args.scheduler is not None:
        raise SpecError("--workers sizes a local cluster; it cannot go with --scheduler")
    out = args.out if args.out is not None else Path("out") / "sweeps" / sweep.name
    if args.dry_run:
        for point in points:
            console.print(f"{point.index:4d}  {point.point_id}  {point.label()}",
                          markup=False, highlight=False)
        return 0
    cache = args.cache if args.cache is not None else out / "cache"
    with _SweepProgress(len(points)) as bar:
        outcome = run_sweep(sweep, points, out, workers=args.workers, scheduler=args.scheduler,
                            resume=args.resume, cache_dir=cache, progress=bar)
    print_sweep(outcome, console)
    return 1 if outcome.failed else 0


class _SweepProgress:
    """Points done, failed, resumed and cache use, with the time remaining."""

    def __init__(self, total: int) -> None:
        from rich.progress import TimeRemainingColumn

        self.bar = _progress_bar("{task.fields[detail]}", TimeRemainingColumn())
        self.task = self.bar.add_task("sweep", total=total, detail="")

    def __enter__(self) -> _SweepProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, outcome: Any, record: Any) -> None:
        detail = (f"failed {outcome.failed}, resumed {outcome.resumed}, cache hits "
                  f"{outcome.cache_hits}/{outcome.cache_hits + outcome.cache_misses}")
        self.bar.update(self.task, completed=outcome.done + outcome.failed + outcome.resumed,
                        detail=detail)


def _reference_run(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    """Architecture, workload, weights, images and the reference run the options name."""
    from .data.budget import check_memory
    from .data.datapath import prepare_weights, preprocessing, run_reference
    from .data.images import load_images
    from .description.spec import load_arch
    from .workloads.load import load_workload

    arch = load_arch(args.arch)
    workload = load_workload(args.model)
    check_memory(workload, args.n, "--n")
    options = _data_options(args)
    weights = prepare_weights(workload, arch, options)
    images = load_images(options.images, args.n,
                         prep=preprocessing(workload, options.normalize), seed=args.seed)
    with _Progress("reference run", len(workload)) as bar:
        run = run_reference(workload, arch, weights, images, progress=bar)
    return arch, workload, weights, images, run


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    from .compression.study import learn_buffers
    from .compression.verify import first_mismatch, verify_layer
    from .report.tables import print_verify

    arch, workload, weights, images, run = _reference_run(args)
    # the byte knapsack fills the buffers whatever the timing, so hits are exercised
    learning = learn_buffers(workload, arch, weights, run, int(arch.pattern_buffer_bytes),
                             "exact")
    checks = []
    with _Progress("verify", len(run.inputs)) as bar:
        for name, li in run.inputs.items():
            bar(name)
            checks.extend(verify_layer(li, weights.layers[name], arch, learning.maps[name],
                                       learning.buffers[name]))
    mismatch = first_mismatch(checks)
    if args.json:
        _print_json({"ok": mismatch is None, "first_mismatch": str(mismatch) if mismatch else None,
                     "images": images.describe(),
                     "layers": [{"layer": c.layer, "scheme": c.scheme, "ok": c.ok,
                                 "ou_computes": c.ou_computes, "wpr_copies": c.wpr_copies,
                                 "buffer_reads": c.buffer_reads, "skipped": c.skipped}
                                for c in checks]})
    else:
        print_verify(checks, workload, arch, weights, images, console)
    if mismatch is not None:
        _console(stderr=True).print(f"cr2des: verification failed: {mismatch}", markup=False,
                                    highlight=False, soft_wrap=True)
        return 1
    return 0


def _progress_bar(field: str, *extra: Any) -> Any:
    """A rich progress bar on stderr (description, bar, done/total, ``field``, elapsed, then
    ``extra`` columns); silent when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(field), TimeElapsedColumn(), *extra, console=console,
                    transient=True, disable=not console.is_terminal)


class _Progress:
    """A rich progress bar on stderr for one phase; silent when stderr is not a terminal."""

    def __init__(self, description: str, total: int) -> None:
        self.bar = _progress_bar("{task.fields[item]}")
        self.task = self.bar.add_task(description, total=total, item="")

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, item: str) -> None:
        self.bar.update(self.task, advance=1, item=item)


class _Phases:
    """Progress of a run on a terminal (stderr): a bar over the models when there are
    several, and one bar per phase of the current model, advanced per layer or scheme.
    Silent when stderr is not a terminal."""

    def __init__(self, models: Sequence[str] = ()) -> None:
        from rich.console import Console

        console = Console(stderr=True)
        self.tasks: dict[str, Any] = {}
        self.totals: dict[str, int] = {}
        self.bar: Any = None
        self.models = None
        if not console.is_terminal:  # silent: the bars are not even loaded
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[item]}"),
                            TimeElapsedColumn(), console=console, transient=True)
        self.models = (self.bar.add_task("models", total=len(models), item="")
                       if len(models) > 1 else None)

    def __enter__(self) -> _Phases:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def model(self, name: str, layers: int, crossbar_layers: int) -> None:
        """A new model starts: its phases replace the last model's."""
        if self.bar is None:
            return
        if self.models is not None:
            if self.tasks:
                self.bar.advance(self.models)
            self.bar.update(self.models, item=name)
        for task in self.tasks.values():
            self.bar.remove_task(task)
        self.tasks = {}
        self.totals = {"reference SL": layers, "reference ST": layers,
                       "learn": crossbar_layers, "test": crossbar_layers, "simulate": 4}

    def __call__(self, phase: str, item: str) -> None:
        if self.bar is None:
            return
        if phase not in self.tasks:
            for task in self.tasks.values():
                self.bar.update(task, visible=False)
            total = self.totals.get(phase.split(" (")[0])
            self.tasks[phase] = self.bar.add_task(phase, total=total, item="")
        self.bar.update(self.tasks[phase], advance=1, item=item)


def _data_options(args: argparse.Namespace) -> Any:
    from .data.datapath import DataOptions

    return DataOptions(images=args.images, weights=args.weights, prune=args.prune,
                       prune_scope=args.prune_scope, seed=args.seed,
                       normalize=_normalize(args.normalize))


def _normalize(text: str | None) -> Any:
    from .workloads.graph import Normalize

    return None if text is None else Normalize.parse(text)


def cmd_profile(args: argparse.Namespace, console: Console) -> int:
    from .compression.profile import layer_patterns, profile_layer, summarize
    from .report.tables import print_profile

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
                       "derived": list(images.derived), "warnings": list(images.warnings),
                       "inputs": images.inputs},
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
                   help="'samples' (scikit-image photographs), an image directory, a .npy/.npz "
                        "array (uint8 photos, or float (N, C, H, W) preprocessed inputs), or "
                        "synthetic[:normal|relu|uniform] activations")
    p.add_argument("--normalize", default=None, metavar="MEAN,STD",
                   help="input normalisation of photographs: 'imagenet' or MEAN,STD (one value "
                        "or three separated by '/'); default: the workload's")
    p.add_argument("--weights", default=None,
                   help="'synthetic', or a .pth/.npz/.onnx file (default: the workload's own "
                        "weights if it has any, else synthetic)")
    p.add_argument("--prune", type=_fraction, default=0.0, metavar="SPARSITY",
                   help="magnitude-prune weights to this sparsity before quantization")
    p.add_argument("--prune-scope", choices=("layer", "global"), default="layer")
    p.add_argument("--seed", type=_whole("--seed", 0, 2**63 - 1), default=0,
                   help="seed of synthetic weights and images")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p.add_argument("--normalize", default=None, metavar="MEAN,STD",
                   help="the input normalisation the model was trained with, written to the "
                        "YAML ('imagenet' or MEAN,STD; ONNX files do not carry it)")

    p = add("profile", cmd_profile, "per-layer input sparsity and OU input-pattern statistics")
    p.add_argument("model", help="zoo name, workload YAML or .onnx")
    p.add_argument("--n", type=_whole("--n", 1, MAX_IMAGES), default=4,
                   help=f"number of images (default: 4, at most {MAX_IMAGES:,})")
    _add_data_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = add("run", cmd_run, "the study: every scheme's work, crossbars, IPR hit rates and time")
    p.add_argument("model", nargs="*", default=["resnet50"],
                   help="workloads (default: resnet50); 'all' = the paper's four "
                        "(alexnet vgg16 resnet50 googlenet)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write results.json, schemes.csv, layers.csv and PNG figures here")
    p.add_argument("--no-plots", action="store_true", help="with --out: no PNG figures")
    p.add_argument("--sl", type=_whole("--sl", 1, MAX_IMAGES), default=4,
                   help=f"learning images (default: 4, at most {MAX_IMAGES:,})")
    p.add_argument("--st", type=_whole("--st", 1, MAX_IMAGES), default=4,
                   help=f"testing images (default: 4, at most {MAX_IMAGES:,})")
    p.add_argument("--alloc", default="time",
                   choices=("time", "exact", "uniform", "proportional", "greedy"),
                   help="pattern-buffer allocation among layers: time saved (default), or "
                        "the byte knapsack of OU activations saved (exact) and its baselines")
    p.add_argument("--compare-alloc", nargs="*", default=None, metavar="METHOD",
                   choices=("time", "exact", "uniform", "proportional", "greedy"),
                   help="also run these allocation methods on the same learned tables "
                        "(no METHOD: all five)")
    p.add_argument("--learn-images", default=None, metavar="SOURCE",
                   help="images the patterns are learned on (default: --images)")
    p.add_argument("--test-images", default=None, metavar="SOURCE",
                   help="images the study is tested on (default: --images; the same source "
                        "is split into disjoint sets)")
    p.add_argument("--buffer", type=_byte_size, default=None, metavar="BYTES",
                   help="total pattern-buffer capacity, e.g. 1MiB (default: the chip's)")
    p.add_argument("--engine", choices=("event", "analytic", "both"), default="event",
                   help="event simulation, closed-form bottleneck estimate, or both side by "
                        "side (default: event; the estimate is always in --json)")
    p.add_argument("--granularity", choices=("coarse", "fine"), default="coarse",
                   help="coarse: one event per output row per layer replica; fine: one per "
                        "OU activation (small networks only)")
    p.add_argument("--max-events", type=_whole("--max-events", 1, 10**12), default=10_000_000,
                   help="stop a simulation after this many events (its report says partial)")
    p.add_argument("--edge-buffer", type=_byte_size, default=None, metavar="BYTES",
                   help="inter-layer buffer per layer input (default: an eDRAM share)")
    p.add_argument("--stream-rows", type=_whole("--stream-rows", 1, MAX_STREAM_ROWS),
                   default=STREAM_ROWS, metavar="N",
                   help="work budget of the stream that measures the steady state, in output "
                        f"rows over all stage replicas (default: {STREAM_ROWS:,}); "
                        "raise it when the report gives a throughput with ± (not measured to "
                        "the tolerance)")
    p.add_argument("--tolerance", type=_tolerance, default=TOLERANCE,
                   metavar="FRACTION",
                   help="precision that ends a stream before its budget: the 95 %% confidence "
                        "half-width of the steady completion interval relative to its mean "
                        f"(default: {TOLERANCE})")
    p.add_argument("--stream-images", type=_whole("--stream-images", 1, MAX_STREAM_IMAGES),
                   default=STREAM_IMAGES, metavar="N",
                   help="most images a stream feeds, whatever its budget (default: "
                        f"{STREAM_IMAGES:,})")
    p.add_argument("--in-flight", type=_whole("--in-flight", 1, MAX_STREAM_IMAGES),
                   default=None, metavar="N",
                   help="admission cap of the stream: images admitted and not finished at "
                        "most (default: each scheme's own, from its batch); one cap "
                        "compares the schemes at the same admission")
    p.add_argument("--jobs", type=_whole("--jobs", 1, 1024), default=None, metavar="N",
                   help="simulate the schemes in N worker processes (default: the number of "
                        "cores; 1: one after the other in this process; results are the same)")
    p.add_argument("--trace", nargs="?", const="", default=None, metavar="PATH",
                   help="write a Chrome trace-event JSON (Perfetto) of one scheme's run "
                        "(without PATH: trace.json in --out DIR)")
    p.add_argument("--trace-scheme", choices=("dense", "sparse", "wpr", "cr2"), default="cr2",
                   help="scheme to trace (default: cr2)")
    p.add_argument("--layers", action="store_true",
                   help="also print the per-layer table (crossbars, OU activations, IPR)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="keep images, reference runs, pattern tables and simulations in "
                        "this content-addressed folder and find them in later runs and "
                        "sweeps (results are the same; docs/sweeps.md)")
    _add_data_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = add("plot", cmd_plot, "redraw the figures of a results.json, or draw a sweep's "
                              "(from the JSON alone)")
    p.add_argument("results", type=Path, help="results.json written by cr2des run --out, or "
                                              "a sweep's results folder")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder for the PNGs (default: the folder of the results)")

    p = add("sweep", cmd_sweep, "run a design-space sweep (YAML grid) on a local or dask cluster")
    p.add_argument("sweep", type=Path, help="sweep YAML (see docs/sweeps.md)")
    p.add_argument("--workers", type=_whole("--workers", 1, 256), default=None,
                   help="worker processes of a local cluster (default: one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing dask cluster (tcp://host:8786)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="results folder (default: out/sweeps/NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out, skipping finished points")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="cache folder (default: OUT/cache; share one between sweeps)")
    p.add_argument("--dry-run", action="store_true", help="list the points and stop")

    p = add("verify", cmd_verify,
            "check bit-exactly that every layer's OU decomposition equals its integer matmul")
    p.add_argument("model", help="zoo name, workload YAML or .onnx")
    p.add_argument("--n", type=_whole("--n", 1, MAX_IMAGES), default=1,
                   help=f"number of images (default: 1, at most {MAX_IMAGES:,})")
    _add_data_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _output_paths(args: argparse.Namespace) -> None:
    """Check every output path the command names before any work starts."""
    from .fileio import check_output, check_output_dir

    inputs: list[str] = []
    for name in ("model", "arch", "images", "weights", "learn_images", "test_images",
                 "results"):
        value = getattr(args, name, None)
        inputs += [str(v) for v in (value if isinstance(value, list) else [value])
                   if v is not None]
    outputs: list[tuple[Path, str]] = []
    if args.command == "import":
        yaml_path = check_output(args.output, option="-o", inputs=inputs)
        outputs = [(yaml_path, "-o"), (yaml_path.with_name(f"{yaml_path.stem}.npz"),
                                       "-o (its weights file)")]
    elif args.command in ("run", "plot") and args.out is not None:
        check_output_dir(args.out, option="--out", inputs=inputs)
    if args.command == "run":
        if args.out is not None:
            outputs += [(Path(args.out) / name, "--out") for name in
                        ("results.json", "schemes.csv", "layers.csv")]
        if args.trace == "" and args.out is None:
            raise SpecError("--trace without a path writes trace.json into --out DIR; give one")
        if args.trace is not None:
            outputs += [(_trace_path(args, model, len(args.model) > 1), "--trace")
                        for model in args.model]
    fresh = Path(args.out) if getattr(args, "out", None) is not None else None
    taken: list[Path] = []
    for path, option in outputs:
        if fresh is None or path.parent != fresh or fresh.is_dir():  # --out DIR is made later
            check_output(path, option=option, inputs=inputs, others=taken)
        taken.append(path)


def _one_line(text: str) -> str:
    text = " ".join(text.splitlines())
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS - 3] + "..."
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; an interrupt (Ctrl-C or SIGTERM) at any point ends it with
    one line, its temporary files removed."""
    try:
        with terminate_on_sigterm():
            return _main(argv)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Terminated:
        return _fail("terminated", 143)


def _fail(message: str, code: int = 2) -> int:
    from rich.console import Console

    Console(stderr=True).print(_one_line(f"cr2des: {message}"), markup=False, highlight=False,
                               soft_wrap=True)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if sys.stdout is None or sys.stdout.closed:
        return _fail("error: standard output is closed")
    # tables piped to a file or a pager keep their columns instead of wrapping at 80
    console = _console(width=None if sys.stdout.isatty() else 160)
    try:
        _output_paths(args)
        code = int(args.func(args, console))
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
        return code
    except Cr2desError as exc:
        return _fail(f"error: {exc}")
    except BrokenPipeError:
        # the reader went away: later flushes at exit must not print a second error
        with _suppress_oserror():
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _fail("error: standard output closed (broken pipe)")
    except MemoryError:
        return _fail("error: out of memory; use fewer images (--n, --sl, --st) or a smaller "
                     "workload")
    except RecursionError:
        return _fail("error: input nested too deeply")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename is None:
            with _suppress_oserror():  # the unwritten rest must not fail again at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        what = os.strerror(exc.errno) if exc.errno else str(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"error: {where}{what}")


def _suppress_oserror() -> Any:
    import contextlib

    return contextlib.suppress(OSError, ValueError)


if __name__ == "__main__":
    raise SystemExit(main())
