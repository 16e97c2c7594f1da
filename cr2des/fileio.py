"""Writing outputs so that nothing is ever left half-written.

Every file cr2des produces is written to a temporary file in the destination folder and
renamed over the target only once it is complete; a failure (bad input discovered late,
an interrupt, a full disk) leaves the previous file, or none, in place.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputError


def _temporary(target: Path, suffix: str) -> Path:
    """An empty temporary file next to ``target``, with the usual output permissions."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp",
                               dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    target = Path(path)
    tmp_path = _temporary(target, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Temporary paths for several outputs that replace their targets together.

    The temporaries are renamed onto their targets only once the block succeeds.  Should
    a later rename fail, the targets already replaced get their previous contents back
    (kept as hard links until the end), so the set is replaced whole or not at all.
    """
    temps: list[Path] = []
    try:
        for p in paths:
            temps.append(_temporary(Path(p), Path(p).suffix))
        yield temps
        backups: list[tuple[Path, Path | None]] = []
        replaced: list[tuple[Path, Path | None]] = []
        try:
            for target, tmp in zip(map(Path, paths), temps, strict=True):
                backup = None
                if target.exists():
                    backup = target.with_name(f".{target.name}.{os.getpid()}.previous")
                    with contextlib.suppress(FileNotFoundError):
                        backup.unlink()
                    try:
                        os.link(target, backup)
                    except OSError:  # no hard links on this file system
                        shutil.copy2(target, backup)
                backups.append((target, backup))
                os.replace(tmp, target)
                replaced.append((target, backup))
        except BaseException:
            # put back only what was replaced; the target whose rename failed is untouched
            for target, backup in reversed(replaced):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, target)
                    else:
                        target.unlink()
            raise
        finally:
            for _target, backup in backups:
                if backup is not None:
                    with contextlib.suppress(FileNotFoundError):
                        backup.unlink()
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], *, binary: bool = False
                 ) -> None:
    """Call ``write(handle)`` on a temporary file, then rename it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as handle:
        write(handle)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda h: h.write(text))


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that ``finally`` blocks (temporary files)
    run as they do on Ctrl-C."""


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` instead of killing the process."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_output(path: str | Path, *, option: str, inputs: Iterable[str | Path] = (),
                 others: Iterable[str | Path] = ()) -> Path:
    """Check, before any work, that ``path`` can receive an output file.

    Its folder must exist; the path must not be a folder, a device, a FIFO, a socket or a
    symlink; it must not be one of the command's ``inputs`` nor another of its outputs
    (``others``).  An existing regular file is fine: it is replaced atomically.

    Raises
    ------
    OutputError
        Naming the path and ``option`` (the command-line option that gave it).
    """
    target = Path(path)

    def fail(message: str) -> OutputError:
        return OutputError(f"{target}: {option}: {message}")

    if not str(target) or target.name in ("", ".", ".."):
        raise fail("expected a file name")
    folder = target.parent
    if not folder.is_dir():
        raise fail(f"folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise fail(f"folder {str(folder)!r} is not writable")
    if target.is_symlink():
        raise fail("is a symbolic link; name the file itself")
    if target.exists():
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise fail("is a folder; name a file inside it")
        if not stat.S_ISREG(mode):
            raise fail("is a device, FIFO or socket, not a regular file")
    resolved = target.resolve()
    for other in inputs:
        candidate = Path(other)
        if candidate.exists() and candidate.resolve() == resolved:
            raise fail("is also an input of this command; choose another output name")
    for other in others:
        if Path(other).resolve() == resolved:
            raise fail("is also another output of this command")
    return target


def check_output_dir(path: str | Path, *, option: str, inputs: Iterable[str | Path] = ()
                     ) -> Path:
    """Check, before any work, that ``path`` can be (or already is) a results folder.

    The path must not be a file, a device, a FIFO or a symlink, nor one of the command's
    ``inputs``.  A missing folder is created by the writer, with its missing parents (as
    ``mkdir -p``), under the nearest existing folder, which must be writable.

    Raises
    ------
    OutputError
        Naming the path and ``option``.
    """
    target = Path(path)

    def fail(message: str) -> OutputError:
        return OutputError(f"{target}: {option}: {message}")

    if not str(target):
        raise fail("expected a folder name")
    if target.is_symlink():
        raise fail("is a symbolic link; name the folder itself")
    if target.exists():
        if not target.is_dir():
            raise fail("is not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise fail("folder is not writable")
    else:  # made with its missing parents; the nearest existing one must be a folder
        ancestor = target.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise fail(f"{str(ancestor)!r} is not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise fail(f"folder {str(ancestor)!r} is not writable")
    resolved = target.resolve()
    for other in inputs:
        candidate = Path(other)
        if candidate.exists() and candidate.resolve() == resolved:
            raise fail("is also an input of this command; choose another folder")
    return target


def _finite(data: Any, path: str, nulls: list[str]) -> Any:
    """``data`` with every NaN or infinity replaced by None, its dotted path noted."""
    if isinstance(data, float) and not math.isfinite(data):
        nulls.append(f"{path}: {data!r}")
        return None
    if isinstance(data, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), nulls)
                for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v, f"{path}[{i}]", nulls) for i, v in enumerate(data)]
    return data


def strict_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON without NaN or Infinity tokens (which strict readers reject): a value that is
    not a finite number is written as null and listed under a top-level ``non_finite``
    with its dotted path and value."""
    import json

    nulls: list[str] = []
    clean = _finite(data, "", nulls)
    if nulls and isinstance(clean, dict):
        clean["non_finite"] = nulls
    return json.dumps(clean, indent=indent, allow_nan=False)
