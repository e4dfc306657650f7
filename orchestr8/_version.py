"""The package version, read from the installed metadata so it has one source: pyproject.toml."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orchestr8")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
