"""Specifications of the error tree: every orchestr8 error is drawn in `_errors`' docstring."""

from __future__ import annotations

import importlib
import pkgutil
import re

import orchestr8
from orchestr8 import _errors
from orchestr8._errors import Orchestr8Error

_NODE = re.compile(
    r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z][A-Za-z0-9]*Error)\b(?:\s+\((?P<also>\w+)\))?"
)


def _drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """Each error drawn in the docstring: its drawn parent and the other base named in brackets."""
    text = _errors.__doc__ or ""
    block = text.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, tuple[str | None, str | None]] = {}
    ancestors: list[tuple[int, str]] = []
    for line in block.splitlines():
        found = _NODE.match(line.strip("\n")[4:])
        assert found is not None, line
        depth = len(found["indent"])
        while ancestors and ancestors[-1][0] >= depth:
            ancestors.pop()
        drawn[found["name"]] = (ancestors[-1][1] if ancestors else None, found["also"])
        ancestors.append((depth, found["name"]))
    return drawn


def _defined_errors() -> dict[str, type[Orchestr8Error]]:
    """Every `Orchestr8Error` class defined in orchestr8, its modules imported (not `__main__`)."""
    for module in pkgutil.walk_packages(orchestr8.__path__, "orchestr8."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: dict[str, type[Orchestr8Error]] = {}
    pending: list[type[Orchestr8Error]] = [Orchestr8Error]
    while pending:
        error = pending.pop()
        if error.__module__.startswith("orchestr8"):
            found[error.__name__] = error
        pending.extend(error.__subclasses__())
    return found


def test_every_orchestr8_error_is_drawn_in_the_tree() -> None:
    """The drawn tree names exactly the errors orchestr8 defines, no more and no fewer."""
    assert set(_drawn_tree()) == set(_defined_errors())


def test_each_error_is_drawn_under_one_of_its_bases() -> None:
    """An error's drawn parent and the base in its brackets are both among its real bases."""
    errors = _defined_errors()
    for name, (parent, also) in _drawn_tree().items():
        bases = {base.__name__ for base in errors[name].__bases__}
        if parent is None:
            assert name == "Orchestr8Error"
        else:
            assert parent in bases, (name, parent, bases)
        if also is not None:
            assert also in bases, (name, also, bases)


def test_every_error_is_defined_in_the_errors_module() -> None:
    """Errors live in `_errors`, so the tree and the classes are read in one place."""
    for name, error in _defined_errors().items():
        assert error.__module__ == "orchestr8._errors", (name, error.__module__)
