"""The vendored JavaScript: every manifest entry matches its file and ships with its licence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orchestr8._web as web

VENDOR = Path(web.__file__).parent / "dashboard" / "static" / "vendor"


def test_every_vendored_file_matches_its_manifest_sha256_and_has_a_licence() -> None:
    """Offline: the sha256 of each file is the manifest's, and its licence file is there."""
    manifest = json.loads((VENDOR / "manifest.json").read_text(encoding="utf-8"))
    assert manifest, "the manifest lists no vendored file"
    for entry in manifest:
        body = (VENDOR / entry["file"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["name"]
        licence = (VENDOR / entry["license_file"]).read_text(encoding="utf-8")
        assert entry["license"] in licence or "Permission is hereby granted" in licence
        assert entry["source"].startswith("https://registry.npmjs.org/")
        assert entry["version"] in entry["file"]


def test_nothing_unlisted_is_vendored() -> None:
    """Every file in the vendor folder is the manifest, a listed file or a listed licence."""
    manifest = json.loads((VENDOR / "manifest.json").read_text(encoding="utf-8"))
    listed = (
        {"manifest.json"} | {e["file"] for e in manifest} | {e["license_file"] for e in manifest}
    )
    assert {path.name for path in VENDOR.iterdir()} == listed


def test_dagre_is_an_es_module_that_imports_nothing() -> None:
    """The layout library loads as a plain ES module: no bundler, no further downloads."""
    manifest = json.loads((VENDOR / "manifest.json").read_text(encoding="utf-8"))
    (dagre,) = (entry for entry in manifest if entry["name"] == "@dagrejs/dagre")
    source = (VENDOR / dagre["file"]).read_text(encoding="utf-8")
    assert "export{" in source.replace(" ", "")
    assert "import " not in source.split("\n", 1)[0]
    assert 'from"' not in source
