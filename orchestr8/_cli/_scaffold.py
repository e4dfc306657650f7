"""Scaffolding: writing a new project, and adding an agent to one (what `init` and `create` do).

`init_project` writes a project that works at once: its workflow names the example agent by
import path, so `orchestr8 run workflows/hello.json` works from the project's directory before any
install, and `orchestr8 test` runs its tests. `create_agent` adds an agent module and its test from
a template, and registers the agent as an entry point when it can edit `pyproject.toml` safely
(`add_entry_point`). Nothing is ever overwritten without `force`. The commands themselves are in
`_project_commands`.

The command line imports this module with the commands, so it imports only light stdlib modules;
the templates and `tomllib` are imported when a command runs.
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from .._agents._registry import find_project_root

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentFiles",
    "Project",
    "ScaffoldError",
    "add_entry_point",
    "check_package_name",
    "check_project_name",
    "class_name",
    "create_agent",
    "find_project_root",
    "init_project",
]

ENTRY_POINT_GROUP = "orchestr8.agents"
_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_PACKAGE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_AGENT_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# Top-level names a project package must not take: it would shadow them for everything it runs.
_TAKEN_PACKAGES = frozenset(
    {
        "actors",
        "anyio",
        "asyncclick",
        "attrs",
        "cattrs",
        "orchestr8",
        "pytest",
        "pytest_trio",
        "tests",
        "trio",
        "workflows",
    }
)


class ScaffoldError(Exception):
    """What the user asked for cannot be done; the CLI prints it as `error: ...`, exit code 1."""


class Project(NamedTuple):
    """A project `init_project` wrote: its names, root and the files it wrote."""

    name: str
    package: str
    root: Path
    written: list[str]
    overwritten: list[str]


class AgentFiles(NamedTuple):
    """An agent `create_agent` added: its id, class, import path, files and registration."""

    name: str
    class_name: str
    import_path: str
    written: list[str]
    registered: bool
    """Whether `pyproject.toml` registers it (now or already) in the `orchestr8.agents` group."""


def check_project_name(name: str) -> str:
    """Return `name` if it is a valid distribution name (PEP 508), else raise `ScaffoldError`."""
    if not _PROJECT_NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a valid project name: use letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit (choose one with --name)"
        )
    return name


def check_package_name(package: str) -> str:
    """Return `package` if it can be the project's top-level package, else raise `ScaffoldError`."""
    if not _PACKAGE_NAME.fullmatch(package) or keyword.iskeyword(package):
        raise ScaffoldError(
            f"{package!r} is not a valid package name: use lower-case letters, digits and '_', "
            "not starting with a digit, and not a Python keyword (choose one with --package)"
        )
    if package in _TAKEN_PACKAGES or package in sys.stdlib_module_names:
        raise ScaffoldError(
            f"the package name {package!r} would shadow the module of that name "
            "(choose another with --package)"
        )
    return package


def class_name(agent_name: str) -> str:
    """The class for a snake_case agent name (`web_search` → `WebSearch`), or `ScaffoldError`."""
    if not _AGENT_NAME.fullmatch(agent_name) or keyword.iskeyword(agent_name):
        raise ScaffoldError(
            f"{agent_name!r} is not a valid agent name: use snake_case (lower-case letters, "
            "digits and single '_' between words, starting with a letter), e.g. web_search"
        )
    return "".join(part[:1].upper() + part[1:] for part in agent_name.split("_"))


def init_project(
    directory: Path, *, name: str | None = None, package: str | None = None, force: bool = False
) -> Project:
    """Write a new project into `directory` (created if needed); see `orchestr8 init --help`.

    Raises:
        ScaffoldError: a name is invalid, or files exist and `force` is false (they are listed).
    """
    from .._version import __version__
    from . import _scaffold_templates as templates

    root = directory.resolve()
    if root.exists() and not root.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a directory")
    project = check_project_name(name if name is not None else root.name)
    package = check_package_name(
        package if package is not None else re.sub(r"[-_.]+", "_", project).lower()
    )
    values = {"project": project, "package": package, "orchestr8_version": __version__}
    files = {
        templates.render(path, **values): templates.render(content, **values)
        for path, content in templates.PROJECT_FILES.items()
    }
    overwritten = _write_files(root, files, force=force, remedy="use --force to overwrite them")
    return Project(project, package, root, list(files), overwritten)


def create_agent(start: Path, agent_name: str, *, package: str | None = None) -> AgentFiles:
    """Add the agent `agent_name` to the project holding `start`; see `orchestr8 create agent`.

    Raises:
        ScaffoldError: not in a project, the name is invalid or taken, the package cannot be
            told, or a file exists already.
    """
    import tomllib

    from . import _scaffold_templates as templates

    agent_class = class_name(agent_name)
    root = find_project_root(start)
    if root is None:
        raise ScaffoldError(
            f"{start} is not inside a project (no pyproject.toml here or above); "
            "create one with `orchestr8 init`"
        )
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_bytes().decode("utf-8")
        document = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ScaffoldError(f"cannot read {pyproject}: {error}") from None
    package_dir = _package_dir(root, document, package)
    import_path = f"{package_dir.name}.{agent_name}:{agent_class}"
    registered = _registered_agents(document)
    _check_agent_id(agent_name, import_path, registered)
    values = {
        "name": agent_name,
        "class": agent_class,
        "package": package_dir.name,
        "package_dir": package_dir.relative_to(root).as_posix(),
    }
    files = {
        templates.render(path, **values): templates.render(content, **values)
        for path, content in templates.AGENT_FILES.items()
    }
    # `create agent` never overwrites: it has no --force to advise.
    _write_files(
        root, files, force=False, remedy="choose another agent name, or move them out of the way"
    )
    done = registered.get(agent_name) == import_path
    if not done:
        edited = add_entry_point(text, agent_name, import_path)
        if edited is not None:
            pyproject.write_bytes(edited.encode("utf-8"))
            done = True
    return AgentFiles(agent_name, agent_class, import_path, list(files), done)


def _package_dir(root: Path, document: Mapping[str, object], given: str | None) -> Path:
    """The project's package: `given`, else the one its agent entry points use, else its name."""
    if given is not None:
        if not _PACKAGE_NAME.fullmatch(given):
            raise ScaffoldError(f"--package {given!r} is not a package name")
        candidates = [given]
    else:
        candidates = sorted(
            {
                path.partition(".")[0].partition(":")[0]
                for path in _registered_agents(document).values()
            }
        )
        project = document.get("project")
        name = project.get("name") if isinstance(project, dict) else None
        if not candidates and isinstance(name, str):
            candidates = [re.sub(r"[-_.]+", "_", name).lower()]
    found = [
        directory
        for candidate in candidates
        for directory in (root / candidate, root / "src" / candidate)
        if (directory / "__init__.py").is_file()
    ]
    if len(found) != 1:
        hint = "no such package" if given is not None else "cannot tell the project's package"
        raise ScaffoldError(
            f"{hint} in {root}; pass --package NAME, the directory holding the agents"
        )
    return found[0]


def _registered_agents(document: Mapping[str, object]) -> dict[str, str]:
    project = document.get("project")
    entry_points = project.get("entry-points") if isinstance(project, dict) else None
    group = entry_points.get(ENTRY_POINT_GROUP) if isinstance(entry_points, dict) else None
    if not isinstance(group, dict):
        return {}
    return {str(key): str(value) for key, value in group.items()}


def _check_agent_id(agent_name: str, import_path: str, registered: Mapping[str, str]) -> None:
    from .._agents._builtins import BUILTIN_AGENTS

    if agent_name in BUILTIN_AGENTS:
        raise ScaffoldError(
            f"{agent_name!r} is a built-in agent; an entry point cannot shadow it, "
            "pick another name"
        )
    current = registered.get(agent_name)
    if current is not None and current != import_path:
        raise ScaffoldError(
            f"pyproject.toml already registers the agent {agent_name!r} as {current!r}"
        )


def _write_files(root: Path, files: Mapping[str, str], *, force: bool, remedy: str) -> list[str]:
    """Write `files` (relative path → text) under `root`; returns those it overwrote.

    `remedy` is the advice given when files exist: what the command offers to get past them.

    Raises:
        ScaffoldError: some exist and `force` is false, or one cannot be written.
    """
    existing = [path for path in files if (root / path).exists()]
    blocked = [path for path in existing if not (root / path).is_file()]
    if blocked or (existing and not force):
        listing = "".join(f"\n  {path}" for path in blocked or existing)
        advice = "they are not files" if blocked else remedy
        raise ScaffoldError(f"refusing to overwrite what exists in {root} ({advice}):{listing}")
    try:
        for path, content in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
    except OSError as error:
        raise ScaffoldError(f"cannot write {error.filename}: {error.strerror or error}") from None
    return existing


def add_entry_point(text: str, name: str, value: str) -> str | None:
    """`text` (a pyproject.toml) with `name = "value"` added to the `orchestr8.agents` group.

    Returns None when that cannot be done safely: the text is not TOML, or the edit would change
    anything else (checked by parsing the result), for instance because the group is written
    inline. `name` and `value` must need no TOML escaping.
    """
    import copy
    import tomllib

    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    newline = "\r\n" if "\r\n" in text else "\n"
    line = f'{name} = "{value}"'
    header = re.search(
        r"""^[ \t]*\[[ \t]*project[ \t]*\.[ \t]*entry-points[ \t]*\.[ \t]*"""
        r"""(?:"orchestr8\.agents"|'orchestr8\.agents')[ \t]*\][ \t]*(?:#.*)?$""",
        text,
        re.MULTILINE,
    )
    if header is None:
        table = f'[project.entry-points."{ENTRY_POINT_GROUP}"]'
        edited = f"{text.rstrip()}{newline}{newline}{table}{newline}{line}{newline}"
    else:
        following = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, header.end())
        end = following.start() if following is not None else len(text)
        # After the table's last line, so its comments and blank lines stay where they were.
        cut = header.end() + len(text[header.end() : end].rstrip())
        edited = f"{text[:cut]}{newline}{line}{text[cut:]}"
        if following is None and not edited.endswith(("\n", "\r")):
            edited += newline
    expected = copy.deepcopy(before)
    project = expected.setdefault("project", {})
    project.setdefault("entry-points", {}).setdefault(ENTRY_POINT_GROUP, {})[name] = value
    try:
        return edited if tomllib.loads(edited) == expected else None
    except tomllib.TOMLDecodeError:
        return None
