"""Which executions a page of the execution list keeps: a workflow name, an id prefix.

The dashboard's list and `GET /executions` narrow the list by the exact workflow name and by the
start of the execution id (a person types the few characters of the short id they see). Both
stores apply the same filter: SQLite as `workflow_name = ?` and as a range on `execution_id`
(`id_range`) that its indexes serve, the memory store through `matches`; the two agree because
both compare strings by code point.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from .._json import has_lone_surrogate

ID_PREFIX_PATTERN: Final = "^[0-9a-f]{1,32}$"
"""What an id prefix may be: 1 to 32 lowercase hex characters (an execution id is 32)."""


def _check_id_prefix(_: object, __: object, value: str | None) -> None:
    """Refuse an id prefix that is not 1 to 32 lowercase hex characters."""
    if value is not None and re.fullmatch(ID_PREFIX_PATTERN, value) is None:
        raise ValueError(f"id_prefix must be 1 to 32 lowercase hex characters, got {value!r}")


@attrs.frozen
class PageFilter:
    """The executions a list page keeps: of the workflow named `workflow`, ids starting `id_prefix`.

    None keeps every execution. Constructing one with a malformed `id_prefix` raises ValueError.
    """

    workflow: str | None = None
    id_prefix: str | None = attrs.field(default=None, validator=_check_id_prefix)

    def nothing_matches(self) -> bool:
        """Whether no stored execution can match (a workflow name no store can hold)."""
        return self.workflow is not None and has_lone_surrogate(self.workflow)

    def id_range(self) -> tuple[str, str] | None:
        """The ids starting with the prefix, as a half-open range [low, high), or None for any.

        The prefix ends in a hex character, so raising that character by one code point gives
        the first string above every id that starts with the prefix.
        """
        prefix = self.id_prefix
        if prefix is None:
            return None
        return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)

    def matches(self, execution_id: str, workflow_name: str) -> bool:
        """Whether an execution with this id and workflow name is kept."""
        if self.workflow is not None and workflow_name != self.workflow:
            return False
        return self.id_prefix is None or execution_id.startswith(self.id_prefix)
