"""Refresh the dashboard's vendored JavaScript from the npm registry; developers only.

Users and CI never run this: the vendored files are committed under
`orchestr8/_web/dashboard/static/vendor/` and ship in the wheel, so nobody needs Node or the
network. For each pinned package in `PACKAGES` it reads the version's metadata from
https://registry.npmjs.org, downloads the tarball, checks it against the metadata's
`dist.integrity` (sha512), extracts the one browser file (an ES module that imports nothing)
and the licence, and writes `manifest.json` (name, version, file, sha256, license, licence
file, source URL). `tests/web/test_vendored_files.py` checks the manifest against the files,
offline. To upgrade, change a version below, run `python scripts/vendor_dashboard.py`, and
try the dashboard.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any, Final

REGISTRY: Final = "https://registry.npmjs.org"
VENDOR: Final = Path(__file__).resolve().parent.parent / "orchestr8/_web/dashboard/static/vendor"

#: name, pinned version, the file in the tarball the browser loads, the licence file in it.
PACKAGES: Final = (("@dagrejs/dagre", "3.1.4", "package/dist/dagre.esm.js", "package/LICENSE"),)


def _get(url: str) -> bytes:
    """The body of a GET to `url` (a registry URL)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
        return body


def _check_integrity(tarball: bytes, integrity: str, name: str) -> None:
    """Stop unless `tarball` matches the registry's sha512 `integrity` for it."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"{name}: unexpected integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{name}: the tarball does not match the registry's integrity")


def _member(archive: tarfile.TarFile, path: str, name: str) -> bytes:
    """The bytes of `path` in the package's tarball."""
    try:
        extracted = archive.extractfile(path)
    except KeyError:
        extracted = None
    if extracted is None:
        raise SystemExit(f"{name}: {path} is not a file in the tarball")
    return extracted.read()


def vendor(name: str, version: str, file: str, licence: str) -> dict[str, Any]:
    """Download, check and extract one package; return its manifest entry."""
    metadata = json.loads(_get(f"{REGISTRY}/{name.replace('/', '%2f')}/{version}"))
    dist = metadata["dist"]
    tarball = _get(dist["tarball"])
    _check_integrity(tarball, dist["integrity"], name)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        code = _member(archive, file, name)
        licence_text = _member(archive, licence, name)
    stem = name.rsplit("/", 1)[-1]
    code_name = f"{stem}-{version}.esm.js"
    licence_name = f"{stem}-{version}.LICENSE"
    (VENDOR / code_name).write_bytes(code)
    (VENDOR / licence_name).write_bytes(licence_text)
    return {
        "name": name,
        "version": version,
        "file": code_name,
        "sha256": hashlib.sha256(code).hexdigest(),
        "license": metadata.get("license", ""),
        "license_file": licence_name,
        "source": dist["tarball"],
        "integrity": dist["integrity"],
    }


def main() -> int:
    """Vendor every pinned package and write the manifest."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    entries = [vendor(*package) for package in PACKAGES]
    manifest = json.dumps(entries, indent=2) + "\n"
    (VENDOR / "manifest.json").write_text(manifest, encoding="utf-8")
    for entry in entries:
        print(f"{entry['name']} {entry['version']} -> {entry['file']} ({entry['sha256'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
