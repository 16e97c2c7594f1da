"""An installed cr2des carries its bundled architectures and zoo.

The top-level ``arch/`` and ``workloads/`` are reached through the links
``cr2des/bundled/arch`` and ``cr2des/bundled/workloads``, whose files the package data of
``pyproject.toml`` copies into a wheel: a sweep's workers on a cluster, or anyone who ran
``pip install .`` rather than an editable install, find ``cr2des run resnet50``'s files.
"""

from __future__ import annotations

import tomllib

import pytest

from cr2des.description.spec import ARCH_DIR
from cr2des.workloads.load import ZOO_DIR

from .conftest import ROOT


@pytest.mark.parametrize(("folder", "used"), [("arch", ARCH_DIR), ("workloads", ZOO_DIR)])
def test_bundled_files_are_the_top_level_ones_and_package_data(folder, used):
    link = ROOT / "cr2des" / "bundled" / folder
    assert link.is_symlink() and link.samefile(ROOT / folder)
    assert used.samefile(ROOT / folder)
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["cr2des"]
    shipped = {p.resolve() for pattern in patterns for p in (ROOT / "cr2des").glob(pattern)}
    files = {p.resolve() for p in (ROOT / folder).iterdir() if p.is_file()}
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)
