"""`scripts/vendor_dashboard.py`: pinned npm tarballs, integrity checked, files and a manifest."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "vendor_dashboard.py"
TARBALL_URL = "https://registry.npmjs.org/@dagrejs/dagre/-/dagre-3.1.4.tgz"


def load_script() -> ModuleType:
    """The script as a module (it is no package: developers run it as a file)."""
    spec = importlib.util.spec_from_file_location("vendor_dashboard", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tarball(files: dict[str, bytes]) -> bytes:
    """A gzipped tar holding `files`, as npm packs them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def fake_registry(
    monkeypatch: pytest.MonkeyPatch, script: ModuleType, packed: bytes, integrity: str
) -> list[str]:
    """Answer the script's GETs from memory; the URLs asked for."""
    asked: list[str] = []
    metadata = {"license": "MIT", "dist": {"tarball": TARBALL_URL, "integrity": integrity}}

    def get(url: str) -> bytes:
        asked.append(url)
        return packed if url == TARBALL_URL else json.dumps(metadata).encode()

    monkeypatch.setattr(script, "_get", get)
    return asked


def test_a_checked_tarball_gives_the_file_its_licence_and_the_manifest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The browser file and licence are extracted; the manifest has name, version, sha256."""
    script = load_script()
    code = b"export{};\n"
    packed = tarball({"package/dist/dagre.esm.js": code, "package/LICENSE": b"MIT licence"})
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(packed).digest()).decode()
    asked = fake_registry(monkeypatch, script, packed, integrity)
    monkeypatch.setattr(script, "VENDOR", tmp_path)
    assert script.main() == 0
    assert asked == ["https://registry.npmjs.org/@dagrejs%2fdagre/3.1.4", TARBALL_URL]
    assert (tmp_path / "dagre-3.1.4.esm.js").read_bytes() == code
    assert (tmp_path / "dagre-3.1.4.LICENSE").read_bytes() == b"MIT licence"
    (entry,) = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert entry["sha256"] == hashlib.sha256(code).hexdigest()
    assert (entry["name"], entry["version"], entry["license"]) == ("@dagrejs/dagre", "3.1.4", "MIT")
    assert entry["source"] == TARBALL_URL


@pytest.mark.parametrize(
    ("integrity", "message"),
    [
        ("sha512-" + base64.b64encode(b"x" * 64).decode(), "does not match"),
        ("sha1-abc", "unexpected integrity algorithm"),
    ],
)
def test_a_tarball_that_fails_its_integrity_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, integrity: str, message: str
) -> None:
    """Nothing is written when the tarball does not match the registry's sha512."""
    script = load_script()
    packed = tarball({"package/dist/dagre.esm.js": b"", "package/LICENSE": b""})
    fake_registry(monkeypatch, script, packed, integrity)
    monkeypatch.setattr(script, "VENDOR", tmp_path)
    with pytest.raises(SystemExit, match=message):
        script.main()
    assert list(tmp_path.iterdir()) == []


def test_a_tarball_without_the_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A package whose layout changed names the missing file."""
    script = load_script()
    packed = tarball({"package/dist/dagre.esm.js": b""})
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(packed).digest()).decode()
    fake_registry(monkeypatch, script, packed, integrity)
    monkeypatch.setattr(script, "VENDOR", tmp_path)
    with pytest.raises(SystemExit, match="package/LICENSE is not a file in the tarball"):
        script.main()
