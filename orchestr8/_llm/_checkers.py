"""The deterministic checks of an adherence score: constraints, structure and section presence.

Each check looks at one reply text and says passed or failed, with a short detail a person can
read (`212 words, at most 200`). A dimension's score is the share of its checks that passed
(`_scoring`), so a checker that takes a list (`must_include: ["risk", "cost"]`) makes one check
per item. Checkers are compiled once, when the template or the agent is built: a bad argument is
a `ValueError` whose message the caller places at its JSON path; running a check never raises.

Text rules, the same everywhere: words are runs of non-whitespace (`str.split()`); phrases
(`must_include`, `must_not_include`) match case-insensitively as substrings; `regex` uses Python's
`re.search` with `re.MULTILINE`; a reply is JSON when it parses as a whole or its first fenced code
block does (the `llm` agent's rule for `output_schema`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._json import JSON

__all__ = [
    "CONSTRAINT_CHECKERS",
    "CheckResult",
    "Constraint",
    "JsonSchemaCheck",
    "compile_constraint",
    "compile_tags",
    "parse_reply_json",
    "required_tag_checks",
    "section_present",
]

_FENCE = re.compile(r"```[ \t]*(?:[A-Za-z0-9_-]+)?[ \t]*\r?\n(.*?)```", re.DOTALL)
_TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_MAX_SCHEMA_PROBLEMS = 3


@attrs.frozen
class CheckResult:
    """One check's verdict on a reply: which dimension and check, whether it passed, and why."""

    dimension: str
    """`structure`, `constraints` or `completeness`."""
    check: str
    """What was checked, e.g. `max_words`, `must_include: risk` or `section: Summary`."""
    passed: bool
    detail: str
    """A short reason a person can read, e.g. `212 words, at most 200`."""

    def to_json(self) -> dict[str, JSON]:
        """The check as the `details` entry of a `step.scored` event."""
        return {
            "dimension": self.dimension,
            "check": self.check,
            "passed": self.passed,
            "detail": self.detail,
        }


def parse_reply_json(text: str) -> tuple[bool, Any, str]:
    """Parse a reply as JSON, or its first fenced code block: `(parsed, value, problem)`."""
    stripped = text.strip()
    try:
        return True, json.loads(stripped), ""
    except ValueError as error:
        problem = f"the reply is not JSON ({error})"
    match = _FENCE.search(stripped)
    if match is not None:
        try:
            return True, json.loads(match.group(1)), ""
        except ValueError as error:
            problem = f"the reply's code block is not JSON ({error})"
    return False, None, problem


def _whole_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0, got {value!r}")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    """A non-empty string, or a non-empty list of them, as a tuple."""
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(item, str) and item for item in items)
    ):
        raise ValueError(f"must be a non-empty {what} or a non-empty list of them, got {value!r}")
    return tuple(items)


@attrs.frozen
class Constraint:
    """One compiled constraint checker with its argument; `run` makes its checks on a reply."""

    name: str
    argument: Any
    run: Callable[[str], list[CheckResult]] = attrs.field(eq=False, repr=False)


def _word_limit(name: str, limit: int, at_most: bool) -> Callable[[str], list[CheckResult]]:
    def run(text: str) -> list[CheckResult]:
        words = len(text.split())
        passed = words <= limit if at_most else words >= limit
        bound = "at most" if at_most else "at least"
        return [CheckResult("constraints", name, passed, f"{words} words, {bound} {limit}")]

    return run


def _max_words(argument: Any) -> Callable[[str], list[CheckResult]]:
    return _word_limit("max_words", _whole_number(argument), at_most=True)


def _min_words(argument: Any) -> Callable[[str], list[CheckResult]]:
    return _word_limit("min_words", _whole_number(argument), at_most=False)


def _max_chars(argument: Any) -> Callable[[str], list[CheckResult]]:
    limit = _whole_number(argument)

    def run(text: str) -> list[CheckResult]:
        detail = f"{len(text)} characters, at most {limit}"
        return [CheckResult("constraints", "max_chars", len(text) <= limit, detail)]

    return run


def _phrases(name: str, wanted: bool) -> Callable[[Any], Callable[[str], list[CheckResult]]]:
    def compile_phrases(argument: Any) -> Callable[[str], list[CheckResult]]:
        phrases = _strings(argument, "string")

        def run(text: str) -> list[CheckResult]:
            folded = text.casefold()
            results = []
            for phrase in phrases:
                found = phrase.casefold() in folded
                detail = "found" if found else "not found"
                check = f"{name}: {phrase}"
                results.append(CheckResult("constraints", check, found == wanted, detail))
            return results

        return run

    return compile_phrases


def _json_keys(argument: Any) -> Callable[[str], list[CheckResult]]:
    keys = _strings(argument, "key")

    def run(text: str) -> list[CheckResult]:
        parsed, value, problem = parse_reply_json(text)
        if parsed and not isinstance(value, dict):
            problem = "the reply is JSON but not an object"
        results = []
        for key in keys:
            check = f"json_keys: {key}"
            if problem:
                results.append(CheckResult("constraints", check, False, problem))
            else:
                found = key in value
                detail = "present" if found else "missing"
                results.append(CheckResult("constraints", check, found, detail))
        return results

    return run


def _regex(argument: Any) -> Callable[[str], list[CheckResult]]:
    patterns = []
    for pattern in _strings(argument, "regular expression"):
        try:
            patterns.append(re.compile(pattern, re.MULTILINE))
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {error}") from None

    def run(text: str) -> list[CheckResult]:
        results = []
        for pattern in patterns:
            found = pattern.search(text) is not None
            detail = "matches" if found else "no match"
            check = f"regex: {pattern.pattern}"
            results.append(CheckResult("constraints", check, found, detail))
        return results

    return run


#: The constraint checkers by name: each compiles its argument into a function of the reply.
CONSTRAINT_CHECKERS: Mapping[str, Callable[[Any], Callable[[str], list[CheckResult]]]] = {
    "json_keys": _json_keys,
    "max_chars": _max_chars,
    "max_words": _max_words,
    "min_words": _min_words,
    "must_include": _phrases("must_include", wanted=True),
    "must_not_include": _phrases("must_not_include", wanted=False),
    "regex": _regex,
}


def compile_constraint(name: str, argument: Any) -> Constraint:
    """Compile the constraint `name` with its argument.

    Raises:
        ValueError: the checker is unknown (the message lists the known ones) or its argument
            does not fit it.
    """
    checker = CONSTRAINT_CHECKERS.get(name)
    if checker is None:
        known = ", ".join(sorted(CONSTRAINT_CHECKERS))
        raise ValueError(f"unknown checker {name!r} (known: {known})")
    return Constraint(name, argument, checker(argument))


class JsonSchemaCheck:
    """The structure check of a JSON reply: it parses and is valid against a JSON Schema."""

    def __init__(self, schema: Any) -> None:
        """Compile `schema` (its `$schema` picks the draft; 2020-12 by default).

        Raises:
            ValueError: `schema` is not an object or not a valid JSON Schema.
        """
        import jsonschema
        import jsonschema.exceptions
        import jsonschema.validators

        if not isinstance(schema, Mapping):
            raise ValueError(f"must be a JSON Schema object, got {schema!r}")
        schema = dict(schema)
        validator_class = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )
        try:
            validator_class.check_schema(schema)
        except jsonschema.exceptions.SchemaError as error:
            raise ValueError(f"is not a valid JSON Schema: {error.message}") from None
        self.schema: Mapping[str, Any] = schema
        self._validator = validator_class(schema)

    def run(self, text: str) -> CheckResult:
        """Check the reply: parsed as JSON, then validated; the detail names the first problems."""
        parsed, value, problem = parse_reply_json(text)
        if not parsed:
            return CheckResult("structure", "json_schema", False, problem)
        errors = sorted(self._validator.iter_errors(value), key=lambda error: error.json_path)
        if not errors:
            return CheckResult("structure", "json_schema", True, "valid")
        shown = "; ".join(
            f"{error.json_path}: {error.message}" for error in errors[:_MAX_SCHEMA_PROBLEMS]
        )
        more = (
            f" (and {len(errors) - _MAX_SCHEMA_PROBLEMS} more)"
            if len(errors) > _MAX_SCHEMA_PROBLEMS
            else ""
        )
        return CheckResult("structure", "json_schema", False, shown + more)


def compile_tags(value: Any) -> tuple[str, ...]:
    """Check a `required_tags` list: XML element names.

    Raises:
        ValueError: it is not a non-empty list of element names.
    """
    tags = _strings(value, "tag name")
    for tag in tags:
        if not _TAG_NAME.match(tag):
            raise ValueError(f"{tag!r} is not an XML element name")
    return tags


def required_tag_checks(tags: Sequence[str], text: str) -> list[CheckResult]:
    """One structure check per tag: the reply holds an opening and a closing tag of that name."""
    results = []
    for tag in tags:
        name = re.escape(tag)
        opening = re.search(rf"<{name}(?:\s[^<>]*)?>", text) is not None
        closing = re.search(rf"</{name}\s*>", text) is not None
        if opening and closing:
            detail = "present"
        elif opening:
            detail = f"<{tag}> is never closed"
        else:
            detail = "missing"
        results.append(CheckResult("structure", f"tag: {tag}", opening and closing, detail))
    return results


def section_present(section: str, text: str, reply_json: Any) -> tuple[bool, str]:
    """Whether a required section is present in a reply, and how it was found.

    A section is present as a Markdown heading (`## Risks`), a label at the start of a line
    (`Risks:` or `**Risks**`), an XML tag (`<risks>`), or a top-level key of a JSON object reply;
    names match case-insensitively.
    """
    name = re.escape(section.strip())
    heading = rf"^[ \t]*#{{1,6}}[ \t]*{name}[ \t]*:?[ \t]*#*[ \t]*$"
    if re.search(heading, text, re.MULTILINE | re.IGNORECASE):
        return True, "heading"
    label = rf"^[ \t]*(?:[-*][ \t]+)?(?:\*\*|__)?{name}(?:\*\*|__)?[ \t]*(?::|\*\*|__|$)"
    if re.search(label, text, re.MULTILINE | re.IGNORECASE):
        return True, "label"
    if re.search(rf"<{name}(?:\s[^<>]*)?>", text, re.IGNORECASE):
        return True, "tag"
    if isinstance(reply_json, dict):
        folded = section.strip().casefold()
        if any(isinstance(key, str) and key.casefold() == folded for key in reply_json):
            return True, "key"
    return False, "missing"
