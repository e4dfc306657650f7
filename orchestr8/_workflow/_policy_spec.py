"""Partial policies as a workflow document writes them, and how they merge into a `Policy`.

A document may leave out any policy field; what it leaves out is `INHERIT`, and comes from the
level below: a step's `PolicySpec` is laid over the workflow's `defaults.policy` (`overlay_policy`),
which is laid over the built-in `Policy()` (`resolve_policy`). The field metadata here is the
source of the policy part of the generated JSON Schema.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ._policy import (
    BulkheadPolicy,
    CircuitBreakerPolicy,
    Jitter,
    Policy,
    RateLimitPolicy,
    RetryPolicy,
    Scope,
)
from ._schema import add_schema_checks, schema_metadata

_BUILTIN: Final = Policy()


class Inherit(enum.Enum):
    """Marks a policy field the document leaves out, so its value comes from the level below."""

    INHERIT = "inherit"

    def __repr__(self) -> str:
        """Render as the constant's name, as in `PolicySpec(timeout=INHERIT)`."""
        return "INHERIT"


#: The value of every policy field a document leaves out.
INHERIT: Final = Inherit.INHERIT


def _meta(description: str, constraints: Mapping[str, Any] | None = None, **more: Any) -> Any:
    return schema_metadata(description, constraints=constraints, **more)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class RetrySpec:
    """The `retry` part of a policy as written; each field left out is inherited."""

    max_attempts: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Calls in all, the first one included (1: no retry).", {"minimum": 1}, default=3
        ),
    )
    initial_delay: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds before the first retry, before jitter.", {"minimum": 0}, default=1.0
        ),
    )
    max_delay: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Upper bound in seconds on any delay, before jitter.", {"minimum": 0}, default=10.0
        ),
    )
    multiplier: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Factor by which each delay grows over the one before.",
            {"exclusiveMinimum": 0},
            default=2.0,
        ),
    )
    jitter: Jitter | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Randomising a delay d: full U(0, d), equal d/2 + U(0, d/2), none d.", default="full"
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class CircuitBreakerSpec:
    """The `circuit_breaker` part of a policy as written; each field left out is inherited."""

    failure_threshold: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("Consecutive failures that open the breaker.", {"minimum": 1}, default=5),
    )
    reset_timeout: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds the breaker stays open before it admits probes.", {"minimum": 0}, default=60.0
        ),
    )
    half_open_requests: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Concurrent probes when half open; that many successes close it.",
            {"minimum": 1},
            default=3,
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class BulkheadSpec:
    """The `bulkhead` part of a policy as written; `max_concurrent` must be given at some level."""

    max_concurrent: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Calls allowed at once (required to switch the bulkhead on).", {"minimum": 1}
        ),
    )
    max_wait: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("Seconds a call waits for a free slot.", {"minimum": 0}, default=0.0),
    )
    scope: Scope | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "process: per process; global: across every process on a PostgreSQL journal.",
            default="process",
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class RateLimitSpec:
    """The `rate_limit` part of a policy as written; `rate` and `burst` must be given somewhere."""

    rate: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Tokens added per second (required to switch rate limiting on).",
            {"exclusiveMinimum": 0},
        ),
    )
    burst: int | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Tokens the bucket holds at most (required to switch rate limiting on).", {"minimum": 1}
        ),
    )
    max_wait: float | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("Seconds a call waits for a token.", {"minimum": 0}, default=0.0),
    )
    scope: Scope | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "process: a bucket per process; global: one bucket on a PostgreSQL journal.",
            default="process",
        ),
    )


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class PolicySpec:
    """A resilience policy as written: partial, merged field by field over the level below.

    A step's policy is laid over the workflow's `defaults.policy`, which is laid over the built-in
    `Policy()`; inside `retry`, `circuit_breaker`, `bulkhead` and `rate_limit` the merge goes field
    by field too. `None` (JSON `null`) switches a feature off; an object switches it on.
    """

    timeout: float | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds one attempt may take; null: no limit.", {"exclusiveMinimum": 0}, default=30.0
        ),
    )
    retry: RetrySpec | Inherit = attrs.field(
        default=INHERIT,
        metadata=_meta("How failed attempts are tried again."),
    )
    circuit_breaker: CircuitBreakerSpec | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta("The breaker shared by all calls with the same key; null switches it off."),
    )
    deadline: float | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "Seconds all attempts together may take; null: no limit.",
            {"exclusiveMinimum": 0},
            default=None,
        ),
    )
    bulkhead: BulkheadSpec | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta("Bounds concurrent calls per key; off unless given; null switches it off."),
    )
    rate_limit: RateLimitSpec | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta("A token bucket per key; off unless given; null switches it off."),
    )
    key: str | Inherit | None = attrs.field(
        default=INHERIT,
        metadata=_meta(
            "The key of the breaker, bulkhead and rate limiter; null: the agent id.", default=None
        ),
    )


_SECTIONS: Final[Mapping[str, type]] = types.MappingProxyType(
    {
        "retry": RetryPolicy,
        "circuit_breaker": CircuitBreakerPolicy,
        "bulkhead": BulkheadPolicy,
        "rate_limit": RateLimitPolicy,
    }
)


def overlay_policy(lower: PolicySpec, upper: PolicySpec) -> PolicySpec:
    """Lay one partial policy over another, field by field, also inside each section.

    What `upper` gives wins; what it leaves out comes from `lower`; `None` in `upper` switches a
    section off, and a section in `upper` over one in `lower` merges their fields.
    """
    changes: dict[str, Any] = {}
    for name in attrs.fields_dict(PolicySpec):
        top, bottom = getattr(upper, name), getattr(lower, name)
        if top is INHERIT:
            continue
        if name in _SECTIONS and top is not None and bottom is not None and bottom is not INHERIT:
            top = attrs.evolve(bottom, **_given(top))
        changes[name] = top
    return attrs.evolve(lower, **changes)


def missing_policy_fields(spec: PolicySpec, base: Policy = _BUILTIN) -> dict[str, list[str]]:
    """For each section `spec` switches on, the fields it lacks that have no default in `base`."""
    missing: dict[str, list[str]] = {}
    for name, section in _SECTIONS.items():
        value = getattr(spec, name)
        if value is INHERIT or value is None or getattr(base, name) is not None:
            continue
        given = _given(value)
        lacking = [
            part.name
            for part in attrs.fields(section)
            if part.default is attrs.NOTHING and part.name not in given
        ]
        if lacking:
            missing[name] = lacking
    return missing


def resolve_policy(spec: PolicySpec, base: Policy = _BUILTIN) -> Policy:
    """Turn a partial policy into the resolved `Policy` the pipeline obeys, filling from `base`.

    Raises:
        ValueError: a section switched on here lacks a field with no default (e.g. `rate`).
    """
    missing = missing_policy_fields(spec, base)
    if missing:
        raise ValueError(
            "; ".join(
                f"{name}: {missing_fields_message(name, lacking)}"
                for name, lacking in missing.items()
            )
        )
    changes: dict[str, Any] = {}
    for name in attrs.fields_dict(PolicySpec):
        value = getattr(spec, name)
        if value is INHERIT:
            continue
        section = _SECTIONS.get(name)
        if section is not None and value is not None:
            below = getattr(base, name)
            given = _given(value)
            value = section(**given) if below is None else attrs.evolve(below, **given)
        changes[name] = value
    return attrs.evolve(base, **changes)


def missing_fields_message(section: str, fields: Sequence[str]) -> str:
    """Say which fields a section lacks: "missing 'rate', required to switch rate_limit on"."""
    names = " and ".join(f"'{name}'" for name in fields)
    return f"missing {names}, required to switch {section} on"


def _given(section: Any) -> dict[str, Any]:
    """The fields of a policy section that the document gives."""
    return {
        name: value
        for name, value in attrs.asdict(section, recurse=False).items()
        if value is not INHERIT
    }
