"""Importing agent code by path: what a failing module raised becomes an ImportError saying so."""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestr8._agents._import_path import import_object


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.startswith("o8_import_path_")]:
        sys.modules.pop(name, None)


def write_module(directory: Path, source: str) -> str:
    """Write a uniquely named module holding `source`; return its name."""
    name = f"o8_import_path_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(source)
    return name


def test_a_module_raising_keyboard_interrupt_is_an_import_error(module_dir: Path) -> None:
    """No signal came: the module's own KeyboardInterrupt is a failure naming it, with its cause."""
    name = write_module(module_dir, "x = 1\nraise KeyboardInterrupt('from the module')\n")
    with pytest.raises(ImportError) as caught:
        import_object(f"{name}:f")
    assert str(caught.value) == (
        f"importing module {name!r} raised KeyboardInterrupt: from the module "
        f"({module_dir / name}.py:2)"
    )
    assert isinstance(caught.value.__cause__, KeyboardInterrupt)


def test_off_the_main_thread_keyboard_interrupt_is_an_import_error(module_dir: Path) -> None:
    """Signals reach only the main thread: in another one, KeyboardInterrupt is the module's."""
    name = write_module(module_dir, "raise KeyboardInterrupt\n")
    raised: list[BaseException] = []

    def load() -> None:
        try:
            import_object(f"{name}:f")
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()
    [error] = raised
    assert isinstance(error, ImportError)
    assert "raised KeyboardInterrupt" in str(error)


def test_a_real_sigint_during_the_import_goes_on_as_keyboard_interrupt(module_dir: Path) -> None:
    """The user's Ctrl-C while a module is imported interrupts, and the handler is restored."""
    before = signal.getsignal(signal.SIGINT)
    name = write_module(
        module_dir, "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(60)\n"
    )
    with pytest.raises(KeyboardInterrupt):
        import_object(f"{name}:f")
    assert signal.getsignal(signal.SIGINT) is before
