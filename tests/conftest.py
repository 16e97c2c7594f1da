from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

# shared, noisy machines: no per-example deadlines (properties, not timings, are tested)
settings.register_profile("cr2des", deadline=None)
settings.load_profile("cr2des")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_arch_data() -> dict[str, Any]:
    """The tiny architecture as plain data, to be modified by a test."""
    return copy.deepcopy(yaml.safe_load((ROOT / "arch" / "tiny.yaml").read_text()))


def set_path(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set ``data[a][b][c] = value`` for ``dotted = "a.b.c"``; ``value=...`` deletes."""
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data
