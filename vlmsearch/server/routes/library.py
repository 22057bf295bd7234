"""The library behind the answers: indexing (uploads, or allowed server folders) as background jobs,
stored images (thumbnails and originals), passages by id, the models and pipelines, health."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from vlmsearch import __version__
from vlmsearch.images import load_image
from vlmsearch.server.errors import ApiError
from vlmsearch.server.jobs import safe_name, sniffed_suffix
from vlmsearch.server.state import require_key, state

router = APIRouter(dependencies=[Depends(require_key)], tags=["library"])
health = APIRouter(tags=["health"])


class IndexPaths(BaseModel):
    paths: list[str] = Field(..., min_length=1, max_length=100, description="Folders or files inside an --allow-path folder")


@router.post("/v1/index", status_code=202, summary="Index uploaded files (multipart) or allowed server paths (JSON); a job")
async def index(request: Request) -> dict:
    app = state(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = IndexPaths.model_validate_json(await request.body())
        paths = [_allowed(Path(p), app.settings.allow_paths) for p in body.paths]
        return app.jobs.start(paths, len(paths)).to_json()
    form = await request.form(max_files=app.settings.max_upload_files)
    uploads = [f for f in form.getlist("files") if hasattr(f, "read")]
    if not uploads:
        raise ApiError(400, "send the files as multipart form fields named 'files', or JSON {\"paths\": [...]}", "bad_input")
    checked = []  # every file is checked before any is kept: a refused request leaves nothing behind
    for upload in uploads:
        data = await upload.read(app.settings.max_upload_bytes + 1)
        if len(data) > app.settings.max_upload_bytes:
            raise ApiError(413, f"{upload.filename} is over the limit of {app.settings.max_upload_bytes:,} bytes")
        name = upload.filename or "upload"
        checked.append((safe_name(name, data, sniffed_suffix(data, name)), data))
    folder = app.jobs.uploads / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in checked:
        (folder / name).write_bytes(data)
    return app.jobs.start([folder / name for name, _ in checked], len(checked)).to_json()


def _allowed(path: Path, roots: tuple[Path, ...]) -> Path:
    """A path inside one of the allowed folders, after resolving links and '..'; anything else is refused."""
    if not roots:
        raise ApiError(403, "this server indexes uploads only: start it with --allow-path DIR to index server folders")
    resolved = path.expanduser().resolve()
    if not any(resolved == root.resolve() or resolved.is_relative_to(root.resolve()) for root in roots):
        raise ApiError(403, f"{path} is outside the allowed folders")
    if not resolved.exists():
        raise ApiError(404, f"{path} does not exist")
    return resolved


@router.get("/v1/jobs/{job_id}", summary="An index job's progress, report and failures")
def job(request: Request, job_id: str) -> dict:
    found = state(request).jobs.get(job_id)
    if found is None:
        raise ApiError(404, f"no job {job_id!r}")
    return found.to_json()


def _stored_path(request: Request, image_id: str) -> Path:
    hit = state(request).engine.store.image(image_id) if len(image_id) == 64 and image_id.isalnum() else None
    if hit is None:
        raise ApiError(404, f"no stored image {image_id!r}")
    path = Path(hit.path)
    if not path.is_file():
        raise ApiError(404, f"the file of image {image_id} is gone: {path.name}")
    return path


@functools.lru_cache(maxsize=512)
def _thumbnail(path: Path, mtime: float, side: int, max_pixels: int) -> bytes:
    image = load_image(path, max_pixels)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@router.get("/v1/images/{image_id}", summary="A stored image's thumbnail (JPEG)")
def thumbnail(request: Request, image_id: str) -> Response:
    path = _stored_path(request, image_id)
    settings = state(request).settings
    data = _thumbnail(path, path.stat().st_mtime, settings.thumbnail_side, state(request).engine.settings.ingest.max_image_pixels)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/v1/images/{image_id}/full", summary="A stored image as it was indexed")
def full_image(request: Request, image_id: str) -> FileResponse:
    return FileResponse(_stored_path(request, image_id))


@router.get("/v1/passages/{passage_id}", summary="One passage by id (citations link here)")
def passage(request: Request, passage_id: str) -> dict:
    found = state(request).engine.store.passage(passage_id)
    if found is None:
        raise ApiError(404, f"no passage {passage_id!r}")
    return found.to_json()


@router.get("/v1/models", summary="Pipelines (as OpenAI-style models), roles and their models")
def models(request: Request) -> dict:
    engine = state(request).engine
    profile = engine.settings.profile
    pipelines = sorted(engine.settings.pipeline_specs())
    usable = [p for p in pipelines if _usable(engine, p)]
    return {
        "object": "list",
        "data": [{"id": f"vlmsearch-{p}", "object": "model", "created": 0, "owned_by": "vlmsearch"} for p in usable],
        "profile": profile.name,
        "roles": {role: {"backend": spec.backend, "model": spec.model} for role, spec in profile.roles.items()},
        "pipelines": usable,
        "default_pipeline": profile.pipeline or ("vlm" if engine.models.has("vlm") else "llm"),
    }


def _usable(engine, pipeline: str) -> bool:
    spec = engine.settings.pipeline_specs()[pipeline]
    roles = {spec.generator_role} | ({spec.rephraser_role} if "rephrase" in spec.stages else set())
    roles |= {spec.captioner_role} if "caption" in spec.stages else set()
    return all(engine.models.has(role) for role in roles)


@health.get("/healthz", summary="Liveness and the store's counts")
async def healthz(request: Request) -> dict:
    app = state(request)
    counts = await run_in_threadpool(app.engine.store.count)
    return {"status": "ok", "version": __version__, "profile": app.engine.settings.profile.name, "store": app.engine.settings.store, **counts}
