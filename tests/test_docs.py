"""The documentation stays in step with the code."""

from __future__ import annotations

import dataclasses
import re
import typing

from cr2des import spec
from cr2des.schema import yaml_key

from .conftest import ROOT


def description_keys(cls: type) -> set[str]:
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "source":
            continue
        keys.add(yaml_key(f))
        options = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        inner = options[0] if options else hints[f.name]
        if dataclasses.is_dataclass(inner):
            keys |= description_keys(inner)  # type: ignore[arg-type]
    return keys


def test_every_architecture_key_is_documented():
    text = (ROOT / "docs" / "architecture.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", text))
    missing = description_keys(spec.Arch) - documented
    assert not missing, f"keys missing from docs/architecture.md: {sorted(missing)}"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / target).exists(), target
