"""cr2des: a discrete-event simulator of compressed ReRAM processing-in-memory accelerators.

The public API follows the flow of a study::

    arch = cr2des.load_arch("cr2")
    workload = cr2des.load_workload("resnet50")
    cr2des.area_power(arch)
"""

from ._version import __version__
from .costs import AreaPower, area_power
from .errors import (
    Cr2desError,
    DataError,
    ImportFailure,
    MappingError,
    SpecError,
    VerificationError,
    WorkloadError,
)
from .spec import Arch, arch_from_dict, load_arch
from .workload import Layer, Workload, load_workload, workload_from_dict

__all__ = [
    "Arch",
    "AreaPower",
    "Cr2desError",
    "DataError",
    "ImportFailure",
    "Layer",
    "MappingError",
    "SpecError",
    "VerificationError",
    "Workload",
    "WorkloadError",
    "__version__",
    "arch_from_dict",
    "area_power",
    "load_arch",
    "load_workload",
    "workload_from_dict",
]
