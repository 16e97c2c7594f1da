"""cr2des: a discrete-event simulator of compressed ReRAM processing-in-memory accelerators.

The public API follows the flow of a study::

    arch = cr2des.load_arch("cr2")
    workload = cr2des.load_workload("resnet50")
    cr2des.area_power(arch)
    study = cr2des.run_study(workload, arch, cr2des.StudyOptions(n_learn=4, n_test=4))
    result = cr2des.simulate(study, "cr2")
    energy = cr2des.evaluate_energy(study, "cr2", seconds_per_image=1 / result.throughput_ips,
                                    latency_s=result.latency_s)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

#: public name -> the module defining it; imported on first use, so that ``import cr2des``
#: (and ``cr2des --version``) does not load numpy, simpy, networkx or scikit-image
_EXPORTS: dict[str, str] = {
    "AreaPower": "costs.area_power", "area_power": "costs.area_power",
    "count_actions": "costs.counts",
    "EnergyResult": "costs.energy", "evaluate_energy": "costs.energy",
    "DataOptions": "data.datapath",
    "Cr2desError": "errors", "DataError": "errors", "ImportFailure": "errors",
    "MappingError": "errors", "SpecError": "errors", "WorkloadError": "errors",
    "ImageSet": "data.images", "learn_test_split": "data.images", "load_images": "data.images",
    "execute": "data.reference",
    "SimOptions": "simulation.sim", "SimResult": "simulation.sim",
    "SimulationError": "simulation.sim", "estimate": "simulation.sim",
    "simulate": "simulation.sim",
    "Arch": "description.spec", "arch_from_dict": "description.spec",
    "load_arch": "description.spec",
    "Study": "compression.study", "StudyOptions": "compression.study",
    "run_study": "compression.study",
    "load_weights": "data.weights", "quantize_weights": "data.weights",
    "Layer": "workloads.graph", "Workload": "workloads.graph", "load_workload": "workloads.load",
    "workload_from_dict": "workloads.graph",
}

if TYPE_CHECKING:
    from .compression.study import Study, StudyOptions, run_study
    from .costs.area_power import AreaPower, area_power
    from .costs.counts import count_actions
    from .costs.energy import EnergyResult, evaluate_energy
    from .data.datapath import DataOptions
    from .data.images import ImageSet, learn_test_split, load_images
    from .data.reference import execute
    from .data.weights import load_weights, quantize_weights
    from .description.spec import Arch, arch_from_dict, load_arch
    from .errors import (
        Cr2desError,
        DataError,
        ImportFailure,
        MappingError,
        SpecError,
        WorkloadError,
    )
    from .simulation.sim import SimOptions, SimResult, SimulationError, estimate, simulate
    from .workloads.graph import Layer, Workload, workload_from_dict
    from .workloads.load import load_workload


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Arch",
    "AreaPower",
    "Cr2desError",
    "DataError",
    "DataOptions",
    "EnergyResult",
    "ImageSet",
    "ImportFailure",
    "Layer",
    "MappingError",
    "SimOptions",
    "SimResult",
    "SimulationError",
    "SpecError",
    "Study",
    "StudyOptions",
    "Workload",
    "WorkloadError",
    "__version__",
    "arch_from_dict",
    "area_power",
    "count_actions",
    "estimate",
    "evaluate_energy",
    "execute",
    "learn_test_split",
    "load_arch",
    "load_images",
    "load_weights",
    "load_workload",
    "quantize_weights",
    "run_study",
    "simulate",
    "workload_from_dict",
]
