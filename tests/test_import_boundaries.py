"""Which way the imports point: `orchestr8` never imports the bundled `actors` package."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import orchestr8

    names = sorted(
        module.name
        for module in pkgutil.walk_packages(orchestr8.__path__, "orchestr8.")
        if not module.name.endswith(".__main__")
    )
    for name in names:
        importlib.import_module(name)
    for name in orchestr8.__all__:
        getattr(orchestr8, name)
    print(json.dumps({
        "imported": names,
        "actors": sorted(m for m in sys.modules if m == "actors" or m.startswith("actors.")),
    }))
    """
)


def test_no_orchestr8_module_imports_actors() -> None:
    """Importing every orchestr8 module and public name loads no module of `actors`."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(done.stdout)
    assert "orchestr8._cli._main" in found["imported"]
    assert "orchestr8.testing._anthropic" in found["imported"]
    assert found["actors"] == []


def test_no_orchestr8_source_names_actors_in_an_import() -> None:
    """No import statement in orchestr8, even one deferred into a function, names `actors`."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "orchestr8"
    offending = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            offending += [
                f"{path.relative_to(package.parent)}:{node.lineno}: {module}"
                for module in modules
                if module == "actors" or module.startswith("actors.")
            ]
    assert offending == []
