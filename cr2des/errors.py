"""Exceptions raised by cr2des.

Every error a user can cause carries where it happened: the file and, for structured
input, the dotted path inside it (``chip.tile.pe.adc.bits``).  The CLI prints
``str(error)`` as one line and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path


class Cr2desError(Exception):
    """Base class of every error that is the user's input, not a bug."""


class SpecError(Cr2desError):
    """A description (architecture or workload) is invalid.

    Parameters
    ----------
    message
        What was expected and what was found.
    path
        Dotted path of the offending key inside the document, or ``""`` for the root.
    file
        The file the document came from, if any.
    """

    def __init__(self, message: str, *, path: str = "", file: str | Path | None = None) -> None:
        self.message = message
        self.path = path
        self.file = str(file) if file is not None else None
        super().__init__(self._render())

    def _render(self) -> str:
        where = ": ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def within(self, file: str | Path) -> SpecError:
        """The same error, attributed to ``file`` if it has no file yet."""
        if self.file is not None:
            return self
        return SpecError(self.message, path=self.path, file=file)


class WorkloadError(SpecError):
    """A workload graph is inconsistent (unknown input, shape mismatch, cycle...)."""


class ImportFailure(Cr2desError):
    """A model file (ONNX, state dict) cannot be turned into a workload."""


class DataError(Cr2desError):
    """Images or weights cannot be loaded or do not match the workload."""


class MappingError(Cr2desError):
    """A network does not fit the chip, or a mapping parameter is unusable."""


class OutputError(Cr2desError):
    """An output path is unusable (missing folder, a special file, one of the inputs)."""
