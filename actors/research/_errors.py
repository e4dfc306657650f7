"""The errors of the research agent, each on the retry side its cause calls for.

::

    NonRetryableError
    ├── ResearchInputError        (ValueError) the input is not {"library", "question"}
    ├── LibraryNotFoundError      (LookupError) Context7 knows no such library
    │   └── NoDocumentationError  the library has no documentation for the question
    └── UpstreamRejectedError     Context7 refused the request (401, 403, other 4xx, bad answer)
    RetryableError
    └── UpstreamUnavailableError  Context7 rate-limited (429), failed (5xx), unreachable, too slow

Errors of the LLM step come from the `llm` agent unchanged (`RetryableError` or
`NonRetryableError`). The microservice maps each class to an HTTP status (see `docs/research.md`).
"""

from __future__ import annotations

from orchestr8 import NonRetryableError, RetryableError

__all__ = [
    "LibraryNotFoundError",
    "NoDocumentationError",
    "ResearchInputError",
    "UpstreamRejectedError",
    "UpstreamUnavailableError",
]


class ResearchInputError(NonRetryableError, ValueError):
    """The input is not a `{"library": ..., "question": ...}` object of usable strings."""


class LibraryNotFoundError(NonRetryableError, LookupError):
    """Context7 has no library matching the requested name or id."""


class NoDocumentationError(LibraryNotFoundError):
    """The library was found but Context7 returned no documentation for the question."""


class UpstreamRejectedError(NonRetryableError):
    """Context7 refused the request or answered with something unusable; retrying cannot help."""


class UpstreamUnavailableError(RetryableError):
    """Context7 is rate-limiting, failing or unreachable; `retry_after` says when to try again."""
