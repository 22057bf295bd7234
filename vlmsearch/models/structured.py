"""Replies that are JSON following a schema, from any chat model.

A model with `constrains_json` (llama.cpp's grammar, a server's structured outputs) decodes under the
schema, so its reply parses and validates by construction; it is still checked, since a server may
ignore the request. Any other model (transformers, our VLM) is shown the schema, and a reply that
does not parse or validate is sent back with the validator's message, up to `retries` times.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from vlmsearch.models.protocols import ChatModel, GenerationOptions, Message, complete


def validator(schema: dict):
    """A JSON Schema validator (the draft the schema names, else 2020-12); a schema that is not
    valid JSON Schema is refused here, with the reason."""
    import jsonschema

    from vlmsearch.errors import BadInputError

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadInputError(f"not a valid JSON Schema: {exc.message}") from None
    return cls(schema)


def first_json_object(text: str) -> dict | None:
    """The first JSON object in a reply (models wrap it in prose or a ``` fence), or None."""
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(text) if c == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def structured_reply(
    model: ChatModel, messages: Sequence[Message], schema: dict, options: GenerationOptions = GenerationOptions(), retries: int = 2
) -> dict | None:
    """The model's reply as an object that validates against `schema`, or None when it gave none
    in `1 + retries` tries (never with a constraining backend, short of a server ignoring it)."""
    check = validator(schema)
    constrained = getattr(model, "constrains_json", False)
    messages = list(messages)
    if not constrained:
        shown = f"\n\nReply with one JSON object only, following this JSON Schema:\n{json.dumps(schema)}"
        messages[-1] = replace(messages[-1], text=messages[-1].text + shown)
    options = options.model_copy(update={"json_schema": schema if constrained else None})
    for _ in range(1 + retries):
        reply = complete(model, messages, options)
        value = first_json_object(reply)
        problem = "it is not a JSON object" if value is None else next((e.message for e in check.iter_errors(value)), None)
        if problem is None:
            return value
        messages += [Message("assistant", reply), Message("user", f"That reply does not follow the schema: {problem}. Reply with the JSON object only.")]
    return None
