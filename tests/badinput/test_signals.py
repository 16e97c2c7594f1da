"""Faults a process must observe from outside: signals, a closed or broken stdout, a full
disk.  Each ends with one stderr line, a non-zero exit and no temporary file left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .cases import ROOT

LONG_RUN = ["run", "resnet50", "--arch", "cr2", "--sl", "1", "--st", "1", "--engine",
            "analytic", "--json"]


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cr2des", *args], cwd=kwargs.pop("cwd", ROOT),
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(("signum", "code", "word", "delay_s"), [
    (signal.SIGINT, 130, "interrupted", 0.05),
    (signal.SIGINT, 130, "interrupted", 1.0),
    (signal.SIGTERM, 143, "terminated", 0.05),
    (signal.SIGTERM, 143, "terminated", 1.0),
])
def test_signal_ends_a_long_run_cleanly(tmp_path, signum, code, word, delay_s):
    """From argument parsing (50 ms after main is called) to the middle of the work."""
    script = ("import sys\nfrom cr2des.cli import main\nprint('ready', flush=True)\n"
              f"sys.exit(main({LONG_RUN!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    time.sleep(delay_s)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert _one_line(stderr) == f"cr2des: {word}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_an_atomic_write_removes_the_temporary(tmp_path, signum):
    script = (
        "import sys, time\n"
        "from cr2des.fileio import Terminated, atomic_path, terminate_on_sigterm\n"
        "try:\n"
        "    with terminate_on_sigterm(), atomic_path(sys.argv[1]) as tmp:\n"
        "        tmp.write_text('partial')\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "except (KeyboardInterrupt, Terminated):\n"
        "    sys.exit(3)\n")
    target = tmp_path / "out.json"
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    assert len(list(tmp_path.iterdir())) == 1  # the temporary exists while writing
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("json", [True, False], ids=["json", "table"])
def test_broken_pipe_is_one_line(json):
    proc = _cli(["workload", "resnet50", *(["--json"] if json else [])], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader goes away before anything is written
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.wait(timeout=60) == 2
    assert "broken pipe" in _one_line(stderr)


def test_closed_stdout_is_one_line():
    proc = _cli(["workload", "tiny"], stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert _one_line(stderr) == "cr2des: error: standard output is closed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_is_one_line():
    with open("/dev/full", "w") as full:
        proc = _cli(["workload", "resnet50", "--json"], stdout=full)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "No space left on device" in _one_line(stderr)
