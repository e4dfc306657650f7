"""docs/architecture.md stays the map of the code: every stage and module, every import contract."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "orchestr8"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# A citation of a numbered section of the design file that once lived outside the repository.
OUTSIDE_DESIGN_CITATION = re.compile(r"\bDESIGN \d")

# Where a citation could hide: everything the repository ships or runs, text files only.
SEARCHED = ["orchestr8", "actors", "tests", "docs", "benchmarks", "examples", ".ci"]
SEARCHED_FILES = ["README.md", "pyproject.toml"]
TEXT_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".expected", ""}


def stage_headings() -> dict[str, str]:
    """Map each `### `name/`` heading of the page to the section of text under it."""
    sections: dict[str, str] = {}
    current: str | None = None
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"#{2,3} (.*)", line)
        if heading:
            named = re.match(r"`(?:orchestr8/)?([a-z_]*)/?`", heading.group(1))
            current = named.group(1) if named and line.startswith("### ") else None
            if current is not None:
                sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def listed_modules(section: str) -> set[str]:
    """The module file names on a section's `Modules:` paragraph (up to the next blank line)."""
    paragraph = re.search(r"^Modules:(.*?)(?:\n\n|\Z)", section, re.MULTILINE | re.DOTALL)
    assert paragraph is not None, "a stage section has no `Modules:` line"
    return set(re.findall(r"`([A-Za-z0-9_]+\.py)`", paragraph.group(1)))


def actual_modules(directory: Path) -> set[str]:
    """The module files of one package, its `__init__.py` aside."""
    return {path.name for path in directory.glob("*.py") if path.name != "__init__.py"}


def test_every_subpackage_has_a_stage_section() -> None:
    """Each subpackage of orchestr8, and the root, has its own section in the architecture page."""
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert set(stage_headings()) == packages | {""}


def test_every_module_is_listed_under_its_stage() -> None:
    """Each stage's `Modules:` line names exactly the modules that exist in that package."""
    sections = stage_headings()
    mismatches = {}
    for name, section in sections.items():
        listed = listed_modules(section)
        actual = actual_modules(PACKAGE / name if name else PACKAGE)
        if listed != actual:
            mismatches[name or "orchestr8"] = {
                "missing from the page": sorted(actual - listed),
                "no such module": sorted(listed - actual),
            }
    assert mismatches == {}


def test_every_import_contract_is_explained() -> None:
    """Each import-linter contract of pyproject.toml is quoted on the page, every layer included."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    linter = settings["tool"]["importlinter"]
    page = ARCHITECTURE.read_text(encoding="utf-8")
    for contract in linter["contracts"]:
        assert f'name = "{contract["name"]}"' in page
        for layer in contract.get("layers", []):
            assert f'"{layer}"' in page
    assert "exclude_type_checking_imports" in page


def test_no_file_cites_a_section_of_the_outside_design_file() -> None:
    """No file cites "DESIGN" and a section number: the rules live in docs/ now."""
    paths = [ROOT / name for name in SEARCHED_FILES]
    for directory in SEARCHED:
        paths += [path for path in (ROOT / directory).rglob("*") if path.is_file()]
    citing = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in paths
        if path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if OUTSIDE_DESIGN_CITATION.search(line)
    ]
    assert citing == []
