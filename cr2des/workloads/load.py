"""Loading a workload by name or path: the zoo's YAML files, a workload YAML, or an ONNX
model.  The graph (:mod:`cr2des.workloads.graph`) and the ONNX importer
(:mod:`cr2des.workloads.onnx_import`) do not import each other's loaders: this module sits
above both.
"""

from __future__ import annotations

from pathlib import Path

from ..description.schema import read_yaml
from ..errors import SpecError
from .graph import Workload, require_crossbar, workload_from_dict

#: folder of the bundled workloads (the zoo): the top-level ``workloads/`` of a source tree
#: (``cr2des/bundled/workloads`` links to it), copied into the package when it is installed
ZOO_DIR = (Path(__file__).resolve().parents[1] / "bundled" / "workloads").resolve()


def zoo_names() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def workload_file(name_or_path: str | Path) -> Path:
    """The file of a workload: the path itself, else the zoo's ``<name>.yaml``."""
    path = Path(name_or_path)
    if not path.exists():
        bundled = ZOO_DIR / f"{name_or_path}.yaml"
        if not bundled.exists():
            raise SpecError(f"no such workload file or zoo model (zoo: {', '.join(zoo_names())})",
                            file=str(name_or_path))
        path = bundled
    return path


def load_workload(name_or_path: str | Path) -> Workload:
    """Load a workload from the zoo (by name), a workload YAML or an ONNX model."""
    path = workload_file(name_or_path)
    if path.suffix.lower() == ".onnx":
        from .onnx_import import import_onnx  # onnx is imported only for ONNX files

        workload = import_onnx(path)
        require_crossbar(workload, path)
        return workload
    data = read_yaml(path)
    return workload_from_dict(data, file=path)
