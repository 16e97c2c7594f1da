"""Writing outputs so that nothing is ever left half-written.

Every file cr2des produces is written to a temporary file in the destination folder and
renamed over the target only once it is complete; a failure (bad input discovered late,
an interrupt, a full disk) leaves the previous file, or none, in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp",
                               dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], *, binary: bool = False
                 ) -> None:
    """Call ``write(handle)`` on a temporary file, then rename it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as handle:
        write(handle)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda h: h.write(text))
