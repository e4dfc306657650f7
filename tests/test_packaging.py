"""The distribution's metadata: the licence it names ships with it, classified as PEP 639 says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def project() -> dict[str, Any]:
    """The parsed `pyproject.toml`."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_the_licence_the_metadata_names_ships_beside_it() -> None:
    """`license = "MIT"` comes with the MIT text in LICENSE, which the build backend ships."""
    metadata = project()
    assert metadata["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 orchestr8 developers" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    # hatchling writes License-Expression and ships LICENSE in wheel and sdist from 1.27 on.
    [backend] = metadata["build-system"]["requires"]
    found = re.fullmatch(r"hatchling>=(\d+)\.(\d+)", backend)
    assert found is not None, backend
    assert (int(found[1]), int(found[2])) >= (1, 27)


def test_classifiers_carry_no_licence_and_name_the_supported_pythons() -> None:
    """No `License ::` classifier beside the licence expression; 3.11, the minimum, is listed."""
    metadata = project()["project"]
    classifiers: list[str] = metadata["classifiers"]
    assert not [classifier for classifier in classifiers if classifier.startswith("License ::")]
    assert metadata["requires-python"] == ">=3.11"
    assert "Programming Language :: Python :: 3.11" in classifiers
