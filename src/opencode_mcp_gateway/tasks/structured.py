"""output_schema: the JSON answer a caller asks for, checked twice by the gateway.

Before the task starts, the schema itself: a JSON object describing an object (OpenCode
offers the model a `StructuredOutput` tool whose parameters are the schema, and a tool's
parameters are an object), valid for its JSON Schema dialect, and at most MAX_SCHEMA_BYTES.
After the turn, the answer: OpenCode 1.18.33 stores whatever object the model produced
without checking it, so the gateway validates it before it reports `completed`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema import exceptions, validators

from .errors import TaskError

MAX_SCHEMA_BYTES = 16_384  # recorded on the session per turn (shaping.py): kept small on purpose
RETRIES = 2  # OpenCode's retryCount: more tries for a model that answers in prose
FAILED_NAME = "StructuredOutputError"


class InvalidSchema(TaskError):
    """output_schema is not a JSON Schema the gateway can use."""


def check_schema(schema: Any) -> dict[str, Any]:
    """The schema, if usable; else InvalidSchema saying what to fix."""
    if not isinstance(schema, dict):
        raise InvalidSchema("output_schema must be a JSON Schema object, e.g. {'type': 'object', 'properties': …}")
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size > MAX_SCHEMA_BYTES:
        raise InvalidSchema(
            f"output_schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES} bytes: send a smaller schema"
        )
    if schema.get("type") != "object":
        raise InvalidSchema(
            'output_schema must describe a JSON object ("type": "object" at the top): put a list or a value '
            "inside a property, e.g. {'type': 'object', 'properties': {'items': {'type': 'array'}}}"
        )
    outside = next(_outside_refs(schema), None)
    if outside is not None:
        raise InvalidSchema(
            f"output_schema refers to {outside[:100]!r}: only references inside the schema ($ref '#/…', e.g. "
            "'#/$defs/item') are allowed; the gateway fetches nothing"
        )
    validator = validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise InvalidSchema(f"output_schema is not a valid JSON Schema at {where}: {exc.message}") from None
    return schema


def mismatch(schema: dict[str, Any], value: Any) -> str | None:
    """Why `value` does not match `schema` (None when it does)."""
    validator = validators.validator_for(schema)(schema)
    try:
        error = exceptions.best_match(validator.iter_errors(value))
    except Exception as exc:  # e.g. a reference that resolves nowhere: say so, never fail the read
        return f"cannot be checked against output_schema ({type(exc).__name__}: {str(exc)[:200]})"

    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    return f"at {where}: {error.message}"[:500]


def failure(schema: dict[str, Any], structured: Any) -> str | None:
    """Why a completed turn's structured answer does not count (None when it does)."""
    if structured is None:
        return "the model finished without the structured answer output_schema asks for (StructuredOutputError)"
    found = mismatch(schema, structured)
    if found is None:
        return None
    return f"the model's structured output does not match output_schema (StructuredOutputError) {found}"


def model_failed(message: str) -> str:
    """OpenCode's StructuredOutputError (the model answered without the StructuredOutput
    tool, its retries included), said so that a caller knows what failed."""
    return (
        f"the model could not produce the structured output output_schema asks for (StructuredOutputError: {message})"
    )


def _outside_refs(node: Any) -> Iterator[str]:
    """Every `$ref` (or `$dynamicRef`) that does not point inside the schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
                yield value
            else:
                yield from _outside_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _outside_refs(item)
