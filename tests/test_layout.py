"""The package layout follows the data flow: no module imports from a later stage."""

from __future__ import annotations

import ast

from .conftest import ROOT

#: the stages in the order data flows through them
STAGES = ("description", "workloads", "data", "compression", "simulation", "costs",
          "results", "report")


def imported_stages(path) -> set[tuple[int, str]]:
    """Stages a module imports (at module level or inside functions), with the line."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.startswith("cr2des."):
            found.add((node.lineno, node.module.split(".")[1]))
    return found


def test_no_stage_imports_a_later_one():
    package = ROOT / "cr2des"
    offenders = []
    for stage in STAGES:
        for path in sorted((package / stage).glob("*.py")):
            for line, target in imported_stages(path):
                if target in STAGES and STAGES.index(target) > STAGES.index(stage):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not offenders, offenders


def test_every_module_lives_in_a_stage():
    top = sorted(p.name for p in (ROOT / "cr2des").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "_version.py", "cli.py", "errors.py",
                   "fileio.py"]
    # bundled/ holds the links to the shipped architectures and zoo: data, no module
    assert sorted(p.name for p in (ROOT / "cr2des").iterdir()
                  if p.is_dir() and p.name not in ("__pycache__", "bundled")) == sorted(STAGES)
    assert not list((ROOT / "cr2des" / "bundled").rglob("*.py"))


def test_the_workload_graph_does_not_know_the_onnx_importer():
    graph = (ROOT / "cr2des" / "workloads" / "graph.py").read_text()
    assert "onnx_import" not in graph
