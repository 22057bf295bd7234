"""Images into data: `POST /v1/extract` (fields following a schema), `POST /v1/detect` (objects with
boxes), `POST /v1/ocr` (text in reading order). Each takes the image as a multipart upload."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from vlmsearch.errors import BadInputError
from vlmsearch.extract import from_fields, from_json_schema
from vlmsearch.server.state import read_image, require_key, state

router = APIRouter(dependencies=[Depends(require_key)], tags=["extract"])
MAX_SCHEMA_CHARS = 20_000


def schema_from_form(schema: str | None, fields: str | None):
    if (schema is None) == (fields is None):
        raise BadInputError('give the fields to extract: `schema` (a JSON Schema object) or `fields` ("name, price: number")')
    if fields is not None:
        return from_fields(fields)
    if len(schema) > MAX_SCHEMA_CHARS:
        raise BadInputError(f"the schema is {len(schema):,} characters; the limit is {MAX_SCHEMA_CHARS:,}")
    try:
        return from_json_schema(json.loads(schema))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"`schema` is not JSON: {exc}") from None


@router.post("/v1/extract", summary="Fill a schema from an image: null where it does not say; each value names its evidence")
async def extract(
    request: Request,
    image: UploadFile = File(..., description="The image"),
    schema: str | None = Form(None, description='A JSON Schema object, e.g. {"type": "object", "properties": {"phone": {"type": "string"}}}'),
    fields: str | None = Form(None, description='Fields instead of a schema: "name, price: number, open_hours"'),
    pipeline: str = Form("llm", description="llm (the image's text and labels) or vlm (and the VLM's caption)"),
    docs: bool = Form(False, description="Also fill fields from passages retrieved for the image"),
) -> dict:
    app = state(request)
    wanted = schema_from_form(schema, fields)
    picture = await read_image(image, app.settings)
    extraction = await run_in_threadpool(app.engine.extract, picture, wanted, pipeline, docs)
    return extraction.to_json()


@router.post("/v1/detect", summary="The objects in an image with their boxes, in pixels")
async def detect(
    request: Request,
    image: UploadFile = File(..., description="The image"),
    labels: str | None = Form(None, description="Comma-separated labels to look for (zero-shot); default: the tagger's classes"),
) -> dict:
    app = state(request)
    picture = await read_image(image, app.settings)
    found = await run_in_threadpool(app.engine.detect, picture, labels.split(",") if labels is not None else None)
    return {"width": picture.width, "height": picture.height, "objects": [d.to_json() for d in found]}


@router.post("/v1/ocr", summary="The text in an image: lines with boxes and scores in reading order, and the text joined")
async def ocr(request: Request, image: UploadFile = File(..., description="The image")) -> dict:
    app = state(request)
    picture = await read_image(image, app.settings)
    return (await run_in_threadpool(app.engine.ocr, picture)).to_json()
