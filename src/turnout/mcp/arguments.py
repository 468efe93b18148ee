"""Arguments checked against the tool's pinned input schema before the server sees them."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

_validators: dict[str, Any] = {}


def argument_problem(schema_hash: str, schema: Any, arguments: Any) -> str | None:
    """None when the arguments fit; a schema the validator cannot read is not the client's fault."""
    if not isinstance(schema, dict):
        return None
    validator = _validators.get(schema_hash)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError:
            return None
        validator = _validators[schema_hash] = cls(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where or 'arguments'}: {error.message}"
