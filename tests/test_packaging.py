"""The distribution's metadata: the licence it names ships with it, classified as PEP 639 says."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

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


DASHBOARD = ROOT / "orchestr8" / "_web" / "dashboard"


def built_wheel(directory: Path) -> zipfile.ZipFile:
    """The wheel hatchling builds from this tree (in-process, offline), opened."""
    hatchling = pytest.importorskip(
        "hatchling.builders.wheel", reason="hatchling (in the dev extra) builds the wheel"
    )
    builder = hatchling.WheelBuilder(str(ROOT))
    [wheel] = builder.build(directory=str(directory), versions=["standard"])
    return zipfile.ZipFile(wheel)


def test_the_wheel_carries_the_dashboard_templates_static_files_and_vendored_libraries(
    tmp_path: Path,
) -> None:
    """`pip install orchestr8` gets every file the dashboard serves: no Node, no download."""
    with built_wheel(tmp_path) as wheel:
        shipped = set(wheel.namelist())
        prefix = "orchestr8/_web/dashboard/"
        assert {
            prefix + "templates/base.html",
            prefix + "templates/login.html",
            prefix + "static/js/api.js",
            prefix + "static/css/dashboard.css",
            prefix + "static/css/login.css",
        } <= shipped
        in_tree = {
            path.relative_to(ROOT).as_posix()
            for path in DASHBOARD.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert in_tree <= shipped, sorted(in_tree - shipped)
        manifest = DASHBOARD / "static" / "vendor" / "manifest.json"
        if manifest.exists():
            for entry in json.loads(manifest.read_text(encoding="utf-8")):
                name = f"{prefix}static/vendor/{entry['file']}"
                assert name in shipped, name
                assert hashlib.sha256(wheel.read(name)).hexdigest() == entry["sha256"]


def test_the_wheel_carries_the_price_table(tmp_path: Path) -> None:
    """The vendored, dated price table ships as package data beside the module that reads it."""
    with built_wheel(tmp_path) as wheel:
        table = json.loads(wheel.read("orchestr8/_llm/prices.json"))
        assert (
            table["as_of"]
            == json.loads(
                (ROOT / "orchestr8" / "_llm" / "prices.json").read_text(encoding="utf-8")
            )["as_of"]
        )
