"""Regenerate the golden end-to-end results that ``tests/test_golden.py`` compares.

Run from the repository root::

    python -m tests.regen_golden

It rewrites ``tests/golden/*.json``: the JSON of a few small ``cr2des`` commands and the
weight-pattern counts of every layer of AlexNet and the tiny network on three
architectures.  Rule: regenerate only for a stated reason -- a deliberate change of the
model or of its inputs, named in the commit message together with the figures that moved.
A speed-up, a refactoring or a clean-up must leave every golden number as it is; when such
a change fails the golden test, the change is wrong, not the golden file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"

#: golden file -> cr2des command line whose JSON it records
COMMANDS: dict[str, list[str]] = {
    "run_tiny.json": ["run", "tiny", "--json"],
    # entries held once (copies: none) must stay what they were before copies per router
    "run_tiny_copies_none.json": ["run", "tiny", "--json", "--arch",
                                  str(GOLDEN / "cr2_copies_none.yaml")],
    "profile_alexnet.json": ["profile", "alexnet", "--n", "2", "--json"],
}

#: (workload, architecture) pairs whose per-band weight-pattern counts are recorded
MAPPINGS: tuple[tuple[str, str], ...] = (("alexnet", "cr2"), ("alexnet", "isaac"),
                                        ("tiny", "tiny"), ("tiny", "isaac"))

#: keys whose values measure the engine's own cost, not results: wall-clock times, and the
#: SimPy events a simulation took (a leaner engine spends fewer events on the same rows;
#: the stream's budget counts rows, so that changes no result)
ENGINE_COST_KEYS = frozenset({"wall_s", "timings_s", "events"})


def cli_json(args: list[str]) -> dict[str, Any]:
    """The JSON a ``cr2des`` command prints, run in this process."""
    from cr2des.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    if code != 0:
        raise RuntimeError(f"cr2des {' '.join(args)} exited with {code}")
    return json.loads(out.getvalue())


def mapping_counts(workload_name: str, arch_name: str) -> dict[str, Any]:
    """Per layer: columns, crossbars per scheme, and every band's non-zero and distinct
    non-zero weight-pattern counts, with the workload's synthetic weights (seed 0)."""
    from cr2des.compression.mapping import SCHEMES, map_layer
    from cr2des.data.weights import quantize_weights, synthetic_weights
    from cr2des.description.spec import load_arch
    from cr2des.workloads.load import load_workload

    arch = load_arch(arch_name)
    workload = load_workload(workload_name)
    weights = quantize_weights(synthetic_weights(workload, seed=0), arch.mapping.weight_bits)
    layers = {}
    for layer in workload.crossbar_layers:
        lmap = map_layer(layer, weights.layers[layer.name].q, arch)
        layers[layer.name] = {
            "columns": lmap.columns, "bands": lmap.n_bands,
            "crossbars": {s: lmap.crossbars(s) for s in SCHEMES},
            "nonzero": lmap.nonzero.tolist(), "unique": lmap.unique.tolist(),
        }
    return {"workload": workload_name, "arch": arch_name, "layers": layers}


def comparable(data: Any) -> Any:
    """``data`` without measurements of the engine's cost (:data:`ENGINE_COST_KEYS`), with
    paths inside the repository relative."""
    if isinstance(data, dict):
        return {k: comparable(v) for k, v in data.items() if k not in ENGINE_COST_KEYS}
    if isinstance(data, list):
        return [comparable(v) for v in data]
    if isinstance(data, str) and data.startswith(str(ROOT) + os.sep):
        return Path(data).relative_to(ROOT).as_posix()
    return data


def current() -> dict[str, Any]:
    """Every golden result as this checkout computes it, keyed by golden file name."""
    results = {name: comparable(cli_json(args)) for name, args in COMMANDS.items()}
    results["mapping.json"] = [mapping_counts(w, a) for w, a in MAPPINGS]
    return results


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    for name, data in current().items():
        _write(GOLDEN / name, data)
        sys.stdout.write(f"wrote {GOLDEN / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
