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
    "AreaPower": "costs", "area_power": "costs",
    "count_actions": "counts",
    "EnergyResult": "energy", "evaluate_energy": "energy",
    "DataOptions": "datapath",
    "Cr2desError": "errors", "DataError": "errors", "ImportFailure": "errors",
    "MappingError": "errors", "SpecError": "errors", "WorkloadError": "errors",
    "ImageSet": "images", "learn_test_split": "images", "load_images": "images",
    "execute": "reference",
    "SimOptions": "sim", "SimResult": "sim", "SimulationError": "sim", "estimate": "sim",
    "simulate": "sim",
    "Arch": "spec", "arch_from_dict": "spec", "load_arch": "spec",
    "Study": "study", "StudyOptions": "study", "run_study": "study",
    "load_weights": "weights", "quantize_weights": "weights",
    "Layer": "workload", "Workload": "workload", "load_workload": "workload",
    "workload_from_dict": "workload",
}

if TYPE_CHECKING:
    from .costs import AreaPower, area_power
    from .counts import count_actions
    from .datapath import DataOptions
    from .energy import EnergyResult, evaluate_energy
    from .errors import (
        Cr2desError,
        DataError,
        ImportFailure,
        MappingError,
        SpecError,
        WorkloadError,
    )
    from .images import ImageSet, learn_test_split, load_images
    from .reference import execute
    from .sim import SimOptions, SimResult, SimulationError, estimate, simulate
    from .spec import Arch, arch_from_dict, load_arch
    from .study import Study, StudyOptions, run_study
    from .weights import load_weights, quantize_weights
    from .workload import Layer, Workload, load_workload, workload_from_dict


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
