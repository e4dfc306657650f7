"""The public API: `orchestr8.__all__` is sorted, complete and exactly what the package shows."""

from __future__ import annotations

import importlib
import types

import pytest

import orchestr8


def test_all_is_sorted_and_unique() -> None:
    """`__all__` is sorted and lists every name once."""
    assert list(orchestr8.__all__) == sorted(set(orchestr8.__all__))


def test_every_public_name_resolves() -> None:
    """Every name in `__all__` can be imported from `orchestr8`."""
    for name in orchestr8.__all__:
        assert getattr(orchestr8, name) is not None, name


def test_dir_matches_all() -> None:
    """`dir(orchestr8)` lists exactly the public names."""
    assert sorted(dir(orchestr8)) == sorted(orchestr8.__all__)


def test_public_names_are_defined_in_private_modules() -> None:
    """Public names live in private `_modules`; none is a private name itself."""
    for name in orchestr8.__all__:
        assert not name.startswith("_") or name == "__version__", name
        value = getattr(orchestr8, name)
        module = getattr(value, "__module__", None)
        if isinstance(value, types.UnionType):
            continue  # a type alias such as `JSON`: its value is a union, made by `types`
        if module is not None and name != "__version__":
            assert module.startswith("orchestr8._"), (name, module)


def test_actor_runtime_is_public() -> None:
    """The actor runtime's user-facing names are exported from the package."""
    runtime = {
        "Actor",
        "ActorError",
        "ActorEvent",
        "ActorNameTakenError",
        "ActorRef",
        "ActorStatistics",
        "ActorStoppedError",
        "AskTimeoutError",
        "BusStatistics",
        "EventBus",
        "MailboxFullError",
        "Orchestr8Error",
        "RestartBackoff",
        "SubscriberStatistics",
        "Supervisor",
        "SupervisorGaveUpError",
        "SupervisorStatistics",
        "open_supervisor",
    }
    assert runtime <= set(orchestr8.__all__)


def test_secrets_are_public() -> None:
    """Embedders pass `Secrets` to `open_runtime` and catch the secret errors."""
    assert {"MissingSecretError", "SecretError", "Secrets", "SecretsFileError"} <= set(
        orchestr8.__all__
    )
    assert issubclass(orchestr8.MissingSecretError, orchestr8.SecretError)


def test_unknown_attribute_raises_attribute_error() -> None:
    """Asking the package for a name it does not export raises AttributeError."""
    with pytest.raises(AttributeError, match="no_such_name"):
        orchestr8.no_such_name  # noqa: B018


def test_from_import_star_gives_all() -> None:
    """`from orchestr8 import *` binds exactly the names in `__all__`."""
    namespace: dict[str, object] = {}
    exec("from orchestr8 import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(orchestr8.__all__)
    assert importlib.import_module("orchestr8") is orchestr8


def test_code_in_the_docs_uses_public_names_only() -> None:
    """Examples and commands in users' docs never reach into private modules (`orchestr8._x`)."""
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    # The contributors' pages are about the private layout itself: they quote the import
    # contracts and `lint-imports` output, which name the stage packages.
    about_the_internals = {"architecture.md", "development.md"}
    private = [
        f"{page.name}: {line.strip()}"
        for page in sorted(docs.glob("*.md"))
        if page.name not in about_the_internals
        for block in re.findall(r"```\w*\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
        for line in block.splitlines()
        if re.search(r"\borchestr8\._|^\s*from \.", line)
    ]
    assert private == []


def test_the_type_checking_imports_are_the_one_list_of_the_api() -> None:
    """Every line of `__init__`'s `TYPE_CHECKING` imports is a public name; no line is skipped."""
    from pathlib import Path

    source = Path(orchestr8.__file__).read_text(encoding="utf-8")
    block = source.partition("\nif TYPE_CHECKING:\n")[2].partition("\n\n")[0]
    names = [line.rpartition(" as ")[2] for line in block.splitlines()]
    assert sorted([*names, "__version__"]) == list(orchestr8.__all__)


def test_process_shell_and_listening_are_public() -> None:
    """Servers built on orchestr8 (the bundled research agent) need only public names."""
    shell = {
        "ExitCode",
        "InsecureBindError",
        "guard_errors",
        "is_loopback",
        "open_shutdown_signals",
        "run_command",
        "serve_app",
        "watch_shutdown_signals",
    }
    assert shell <= set(orchestr8.__all__)
    assert issubclass(orchestr8.InsecureBindError, orchestr8.Orchestr8Error)
