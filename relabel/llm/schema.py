"""A small validator for the JSON-schema subset the stage schemas use.

Only what prompts.py needs: object (properties, required, additionalProperties), array (items,
maxItems), string (maxLength), number / integer (minimum, maximum), boolean, enum. Endpoints
without a JSON-schema mode answer in free JSON, so we check every reply ourselves.
"""

from __future__ import annotations

from typing import Any

TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, each naming where (``$.achievements[0].steps``)."""
    kind = schema.get("type")
    if kind:
        expected = TYPES[kind]
        wrong_bool = isinstance(value, bool) and kind in ("number", "integer")
        if not isinstance(value, expected) or wrong_bool:
            return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    if kind in ("number", "integer"):
        return _number_errors(value, schema, path)
    if kind == "string" and len(value) > schema.get("maxLength", len(value)):
        return [f"{path}: longer than {schema['maxLength']} characters"]
    if kind == "array":
        errors = []
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
        return errors
    if kind == "object":
        return _object_errors(value, schema, path)
    return []


def _number_errors(value: float, schema: dict[str, Any], path: str) -> list[str]:
    if "minimum" in schema and value < schema["minimum"]:
        return [f"{path}: {value} is below {schema['minimum']}"]
    if "maximum" in schema and value > schema["maximum"]:
        return [f"{path}: {value} is above {schema['maximum']}"]
    return []


def _object_errors(value: dict, schema: dict[str, Any], path: str) -> list[str]:
    properties = schema.get("properties", {})
    errors = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    if schema.get("additionalProperties") is False:
        errors += [f"{path}: unexpected key {key!r}" for key in value if key not in properties]
    for key, sub in properties.items():
        if key in value:
            errors += schema_errors(value[key], sub, f"{path}.{key}")
    return errors
