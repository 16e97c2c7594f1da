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

from ._version import __version__
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
