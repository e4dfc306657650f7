"""The `research` agent: answers questions about a library from its Context7 documentation.

One core (`ResearchCore`), three ways to use it, all with the input ``{"library", "question"}``
and the output ``{"library": {"id", "name"}, "answer", "sources", "documentation", "model",
"usage"}``:

- `ResearchAgent`, the `research` agent of workflows (entry point `orchestr8.agents`);
- the microservice: ``orchestr8 agent serve research`` (`POST /process`, `GET /health`);
- the in-process adapter `handle_request(input, context)`, for hosts that call agents as
  functions.

Names are imported on first use (PEP 562), so the command line can import the `agent` command
group from `actors.research._command` without loading httpx, Quart or the model client.
See `docs/research.md`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import Handler as Handler
    from ._adapter import handle_request as handle_request
    from ._adapter import make_handler as make_handler
    from ._agent import ResearchAgent as ResearchAgent
    from ._core import ResearchCore as ResearchCore
    from ._core import ResearchSettings as ResearchSettings
    from ._core import validate_input as validate_input
    from ._errors import LibraryNotFoundError as LibraryNotFoundError
    from ._errors import NoDocumentationError as NoDocumentationError
    from ._errors import ResearchInputError as ResearchInputError
    from ._errors import UpstreamRejectedError as UpstreamRejectedError
    from ._errors import UpstreamUnavailableError as UpstreamUnavailableError
    from ._server import serve as serve
    from ._service import create_app as create_app

_EXPORTS: dict[str, str] = {
    "Handler": "_adapter",
    "LibraryNotFoundError": "_errors",
    "NoDocumentationError": "_errors",
    "ResearchAgent": "_agent",
    "ResearchCore": "_core",
    "ResearchInputError": "_errors",
    "ResearchSettings": "_core",
    "UpstreamRejectedError": "_errors",
    "UpstreamUnavailableError": "_errors",
    "create_app": "_service",
    "handle_request": "_adapter",
    "make_handler": "_adapter",
    "serve": "_server",
    "validate_input": "_core",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'actors.research' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, for completion and `help()`."""
    return list(__all__)
