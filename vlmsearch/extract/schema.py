"""What to extract: a JSON Schema object, read from a file, a pydantic model (`module:Class`) or a
short field list ("name, price: number, open_hours").

Every top-level field is made required and nullable: the model must say something about each field,
and `null` is how it says the image does not show it (never an invented value).
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.errors import BadInputError
from vlmsearch.models.structured import validator

# --fields types -> JSON Schema
FIELD_TYPES = {
    "string": {"type": "string"}, "text": {"type": "string"},
    "number": {"type": "number"}, "integer": {"type": "integer"}, "int": {"type": "integer"},
    "boolean": {"type": "boolean"}, "bool": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
    "date": {"type": "string", "description": "a date, as written"},
}  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_FIELDS = 40


@dataclass(frozen=True)
class ExtractSchema:
    """The user's schema (as given) and the one decoding and validation use (fields nullable)."""

    title: str
    given: dict
    nullable: dict

    @property
    def fields(self) -> list[str]:
        return list(self.nullable["properties"])

    def empty(self) -> dict:
        return dict.fromkeys(self.fields)

    def validate(self, value: dict) -> None:
        errors = [e.message for e in validator(self.nullable).iter_errors(value)]
        if errors:
            raise BadInputError(f"does not follow the schema {self.title!r}: {errors[0]}")


def from_fields(spec: str) -> ExtractSchema:
    """ "name, price: number, open_hours" -> an object schema (a field's type defaults to string)."""
    properties: dict[str, dict] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, kind = (x.strip() for x in part.partition(":"))
        if not _NAME.fullmatch(name):
            raise BadInputError(f"field name {name!r}: use letters, digits and _ (e.g. open_hours)")
        kind = kind.lower() or "string"
        if kind not in FIELD_TYPES:
            raise BadInputError(f"field {name!r}: unknown type {kind!r}; types: {', '.join(sorted(FIELD_TYPES))}")
        if name in properties:
            raise BadInputError(f"field {name!r} is given twice")
        properties[name] = dict(FIELD_TYPES[kind])
    if not properties:
        raise BadInputError('no fields given: pass e.g. --fields "name, price: number, open_hours"')
    return from_json_schema({"title": "fields", "type": "object", "properties": properties})


def from_json_schema(schema: dict) -> ExtractSchema:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object" or not isinstance(schema.get("properties"), dict):
        raise BadInputError('the schema must describe an object: {"type": "object", "properties": {...}}')
    if not schema["properties"]:
        raise BadInputError("the schema has no properties: name at least one field")
    if len(schema["properties"]) > MAX_FIELDS:
        raise BadInputError(f"the schema has {len(schema['properties'])} fields; the limit is {MAX_FIELDS}")
    validator(schema)  # a broken schema is the user's error, said before any model runs
    nullable = {k: v for k, v in schema.items() if k not in ("properties", "required")}
    nullable["properties"] = {name: _nullable(field) for name, field in schema["properties"].items()}
    nullable["required"] = list(schema["properties"])
    nullable["additionalProperties"] = False
    nullable["type"] = "object"
    return ExtractSchema(str(schema.get("title") or "schema"), schema, nullable)


def _nullable(field: dict) -> dict:
    if not isinstance(field, dict):
        raise BadInputError(f"a property's schema must be an object, not {field!r}")
    described = {k: field[k] for k in ("description", "title") if k in field}
    return {"anyOf": [field, {"type": "null"}], **described}


def load_schema(source: str) -> ExtractSchema:
    """A .json file holding a JSON Schema, or `module:Class` naming a pydantic model."""
    path = Path(source).expanduser()
    if path.is_file():
        try:
            return from_json_schema(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path} is not JSON: {exc}") from None
    module, colon, name = source.partition(":")
    if not colon or not module or not name:
        raise BadInputError(f"schema {source!r}: give a JSON Schema file, or a pydantic model as module:Class")
    try:
        model = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise BadInputError(f"schema {source!r}: cannot import it ({exc})") from None
    if not hasattr(model, "model_json_schema"):
        raise BadInputError(f"schema {source!r} is not a pydantic model")
    return from_json_schema(model.model_json_schema())
