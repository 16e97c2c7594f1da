"""Start-up: ``import cr2des`` and ``cr2des --version``/``--help`` load no heavy package.

numpy, simpy, networkx, onnx, scikit-image, rich and matplotlib are imported by the module
that uses them, when it is used (the start-up time itself is measured by
``tests/benchmarks/test_bench_run.py``, not here).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "simpy", "networkx", "onnx", "skimage", "scipy", "rich", "matplotlib",
         "yaml")


def modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("code", [
    "import cr2des",
    "import cr2des.cli",
    "from cr2des.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass",
    "from cr2des.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n"
    "    pass",
])
def test_start_up_imports_no_heavy_package(code):
    loaded = modules_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_public_api_is_imported_on_first_use():
    loaded = modules_after("import cr2des\nassert cr2des.load_arch('tiny').name == 'tiny'\n"
                           "assert cr2des.run_study.__module__ == 'cr2des.compression.study'")
    assert "cr2des.compression.study" in loaded and "numpy" in loaded


def test_public_api_is_complete():
    import cr2des

    for name in cr2des.__all__:
        assert getattr(cr2des, name) is not None, name
    assert set(cr2des.__all__) <= set(dir(cr2des))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cr2des.nope  # noqa: B018
