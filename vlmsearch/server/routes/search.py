"""Search: text -> images (`GET /v1/search`), image -> images (`POST /v1/search`), text -> passages
(`GET /v1/passages`). Image hits carry the URLs of their thumbnail and full image."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from vlmsearch.records import ImageHit
from vlmsearch.server.state import read_image, require_key, state

router = APIRouter(dependencies=[Depends(require_key)], tags=["search"])
K = Query(10, ge=1, le=200, description="How many hits")
WHERE = Query(None, max_length=500, description="SQL filter on stored fields, e.g. path LIKE '%cats%'")


def image_json(hit: ImageHit) -> dict:
    return {**hit.to_json(), "thumbnail": f"/v1/images/{hit.id}", "full": f"/v1/images/{hit.id}/full"}


@router.get("/v1/search", summary="Text -> images")
def search_text(request: Request, q: str = Query(..., max_length=4000), k: int = K, where: str | None = WHERE) -> dict:
    hits = state(request).engine.search_images(q, k, where)
    return {"query": q, "hits": [image_json(h) for h in hits]}


@router.post("/v1/search", summary="Image -> similar images")
async def search_image(
    request: Request, image: UploadFile = File(...), k: int = Form(10, ge=1, le=200), where: str | None = Form(None, max_length=500)
) -> dict:
    app = state(request)
    picture = await read_image(image, app.settings)
    hits = await run_in_threadpool(app.engine.similar_images, picture, k, where)
    return {"hits": [image_json(h) for h in hits]}


@router.get("/v1/passages", summary="Text -> passages of the indexed documents")
def search_passages(request: Request, q: str = Query(..., max_length=4000), k: int = K, where: str | None = WHERE) -> dict:
    hits = state(request).engine.search_passages(q, k, where)
    return {"query": q, "hits": [h.to_json() for h in hits]}
