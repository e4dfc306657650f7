"""orchestr8: agent orchestration on trio — supervised actors, JSON workflows, resilience.

The public API is exactly what `__all__` lists; everything else lives in private modules. Names are
imported on first use (PEP 562), so `import orchestr8` and `orchestr8 --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._actor import Actor as Actor
    from ._actor import ActorEvent as ActorEvent
    from ._actor import ActorRef as ActorRef
    from ._actor import ActorStatistics as ActorStatistics
    from ._bus import BusStatistics as BusStatistics
    from ._bus import EventBus as EventBus
    from ._bus import SubscriberStatistics as SubscriberStatistics
    from ._errors import ActorError as ActorError
    from ._errors import ActorStoppedError as ActorStoppedError
    from ._errors import AskTimeoutError as AskTimeoutError
    from ._errors import MailboxFullError as MailboxFullError
    from ._errors import Orchestr8Error as Orchestr8Error
    from ._errors import SupervisorGaveUpError as SupervisorGaveUpError
    from ._supervisor import ActorNameTakenError as ActorNameTakenError
    from ._supervisor import RestartBackoff as RestartBackoff
    from ._supervisor import Supervisor as Supervisor
    from ._supervisor import SupervisorStatistics as SupervisorStatistics
    from ._supervisor import open_supervisor as open_supervisor

_EXPORTS: dict[str, str] = {
    "Actor": "_actor",
    "ActorError": "_errors",
    "ActorEvent": "_actor",
    "ActorNameTakenError": "_supervisor",
    "ActorRef": "_actor",
    "ActorStatistics": "_actor",
    "ActorStoppedError": "_errors",
    "AskTimeoutError": "_errors",
    "BusStatistics": "_bus",
    "EventBus": "_bus",
    "MailboxFullError": "_errors",
    "Orchestr8Error": "_errors",
    "RestartBackoff": "_supervisor",
    "SubscriberStatistics": "_bus",
    "Supervisor": "_supervisor",
    "SupervisorGaveUpError": "_errors",
    "SupervisorStatistics": "_supervisor",
    "open_supervisor": "_supervisor",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'orchestr8' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, for completion and `help()`."""
    return list(__all__)
