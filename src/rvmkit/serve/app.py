"""The FastAPI application: the job API (documented at /docs), the browser UI at /, and /live.

The contract other programs rely on (keep it stable; README "rvmkit serve" documents it):
- POST /api/jobs: multipart field `file` plus form fields `outputs` (comma list of composition, alpha,
  foreground; default composition), `background` (colour or 'transparent'; or an image as the file
  field `background_file`), `downsample_ratio` and `format` (mp4, mkv, webm, mov, png) -> 202 + the job.
- A job: {"id", "state": queued|running|done|failed|cancelled, "progress": {"frames_done",
  "frames_total", ...}, "error", "outputs": {NAME: URL}, ...}.
- GET /api/jobs, /api/jobs/{id}, /api/jobs/{id}/events (SSE), /api/jobs/{id}/outputs/{name} (Range),
  /api/jobs/{id}/preview, DELETE /api/jobs/{id}; GET /api/health.
- Errors are JSON {"detail": "...", "limit"?: ...}: 413 upload too large, 422 not a video / over a limit /
  bad option / unexpected or repeated form field, 429 queue full, 507 disk full, 401 token missing or
  wrong, 403 Host not served or a state-changing request from another origin (guard.py), 404 unknown job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import mimetypes
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

import rvmkit
from rvmkit.serve.checks import FORMATS, check_upload, job_options
from rvmkit.serve.config import MB, ServeConfig
from rvmkit.serve.guard import Guard
from rvmkit.serve.jobs import ACTIVE, DataLock, Job, JobStore, new_job_id
from rvmkit.serve.scheduler import Scheduler
from rvmkit.serve.upload import UploadError, receive
from rvmkit.serve.worker import ROLES

log = logging.getLogger("rvmkit.serve")
STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0
STORED_AS = {"file": "input", "background_file": "background"}  # upload fields -> names in the job folder
TEXT_FIELDS = ("outputs", "background", "downsample_ratio", "format")
MAX_NAME_BYTES = 255  # a download's file name: what every common filesystem takes
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin",
                     "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the video (or an image)"},
        "outputs": {"type": "string", "default": "composition",
                    "description": f"comma list of {', '.join(ROLES)}"},
        "background": {"type": "string", "description": "colour name, #RRGGBB, R,G,B or 'transparent' "
                                                        "(default: RVM's green)"},
        "background_file": {"type": "string", "format": "binary", "description": "a background image"},
        "downsample_ratio": {"type": "string", "default": "auto",
                             "description": "'auto' or a number in (0, 1]"},
        "format": {"type": "string", "enum": list(FORMATS),
                   "description": "mp4 (default; webm when transparent), mkv, webm, mov, or png "
                                  "(a zip of PNGs)"},
    }}}}}}


class Changes:
    """Wakes the SSE streams when any job changes; `notify` may be called from any thread."""

    def __init__(self) -> None:
        self.version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._event = loop, asyncio.Event()

    def notify(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seen: int, timeout: float) -> bool:
        """Until the version passes `seen` (True) or `timeout` (False)."""
        if self.version != seen:
            return True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        return False


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it (the contract's fields first)."""
    base = f"/api/jobs/{job.id}"
    done = job.state == "done"
    outputs = {name: f"{base}/outputs/{name}" for name in job.outputs if name != "preview"} if done else {}
    options = {key: value for key, value in job.options.items() if key != "background_file"}
    if job.options.get("background_file"):
        options["background"] = "image"
    return {"id": job.id, "state": job.state,
            "progress": {"frames_done": job.frames_done, "frames_total": job.frames_total, "fps": job.fps,
                         "eta_seconds": job.eta},
            "error": job.error, "outputs": outputs,
            "preview": f"{base}/preview" if done and "preview" in job.outputs else None,
            "name": job.name, "options": options, "input": job.info, "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at}


def _download_name(job: Job, name: str) -> str:
    """`<upload's stem>.<output>.<ext>`, at most 255 bytes (UTF-8) and never hidden (no leading dot)."""
    ending = f".{name}{Path(job.outputs[name]).suffix}"
    stem = Path(job.name).stem.lstrip(". ") or "video"
    room = MAX_NAME_BYTES - len(ending.encode())
    stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip() or "video"
    return stem + ending


def _attachment(filename: str) -> str:
    """Content-Disposition for `filename`: RFC 6266's filename* (UTF-8, what browsers use) after a plain
    ASCII filename (what `curl -OJ` uses), so both save it under the same safe name."""
    plain = "".join(c if " " <= c < "\x7f" and c not in '"\\/;%' else "_" for c in filename)
    return f'attachment; filename="{plain}"; filename*=utf-8\'\'{quote(filename, safe="")}'


class Live:
    """The static site served at /live: `--live-dir`, or one `rvmkit.web.write_site` builds at start-up
    in <data-dir>/live (in a thread: the API is ready before it is)."""

    def __init__(self, config: ServeConfig) -> None:
        self.root: Path | None = Path(config.live_dir).resolve() if config.live_dir else None
        self.reason = "the in-browser page is being built" if self.root is None else ""
        self._target = Path(config.data_dir) / "live"

    def build(self) -> None:
        try:
            from rvmkit.web import write_site
        except ImportError:
            self.reason = "this rvmkit has no in-browser page (rvmkit.web is not installed)"
            return
        try:
            self.root = Path(write_site(self._target, overwrite=True)).resolve()
            self.reason = ""
        except Exception as exc:  # noqa: BLE001 - /live says why; the service itself is unaffected
            log.error("cannot build the /live page in %s: %s", self._target, exc)
            self.reason = (f"the in-browser page could not be built ({type(exc).__name__}; the server's "
                           "log says why)")

    def file(self, path: str) -> Path:
        if self.root is None:
            raise HTTPException(404, self.reason)
        target = (self.root / path).resolve()
        if target != self.root and self.root not in target.parents:
            raise HTTPException(404, "not found")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            raise HTTPException(404, "not found")
        return target


def create_app(config: ServeConfig) -> FastAPI:
    """The application for `config` (already checked). The store and the scheduler start with it."""
    config = config.checked()
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    lock = DataLock(Path(config.data_dir)).acquire()  # before anything in the folder is read or changed
    try:
        store = JobStore(Path(config.data_dir))
    except BaseException:
        lock.release()
        raise
    changes = Changes()
    scheduler = Scheduler(store, config, changes.notify)
    live = Live(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        changes.bind(asyncio.get_running_loop())
        scheduler.start()
        if live.root is None:
            threading.Thread(target=live.build, name="rvmkit-live", daemon=True).start()
        app.state.ready = True
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.stop)
            store.close()
            lock.release()

    app = FastAPI(title="rvmkit serve", version=rvmkit.__version__, lifespan=lifespan,
                  description="Video matting (RobustVideoMatting) as a service: upload a video, follow the "
                              "job, download the outputs. Same engine and options as `rvmkit matte`.")
    app.state.ready = False
    app.state.store, app.state.scheduler = store, scheduler
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["Content-Range", "Accept-Ranges"])
    app.add_middleware(Guard, config=config)  # added last: the outermost, it sees every request first

    @app.exception_handler(UploadError)
    async def refused(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), **exc.extra}, status_code=exc.status)

    @app.exception_handler(sqlite3.OperationalError)
    async def database_trouble(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        log.error("job database: %s", exc)
        if "full" in str(exc):
            return JSONResponse({"detail": "the server's disk is full; delete ended jobs to free space"},
                                status_code=507)
        return JSONResponse({"detail": "the server's job database is unavailable; try again"}, 503)

    app.include_router(_api(config, store, scheduler, changes))
    _pages(app, live)
    return app


def _authorizer(config: ServeConfig) -> Any:
    bearer = HTTPBearer(auto_error=False, description="required when the server was started with --token")
    credentials_of = Depends(bearer)

    def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = credentials_of
                      ) -> None:
        """Bearer token in the Authorization header, or `access_token=` in the query (for what a browser
        cannot send headers with: EventSource, <video src>, download links)."""
        if not config.token:
            return
        given = request.query_params.get("access_token") if credentials is None else credentials.credentials
        if not given or not hmac.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token


def _api(config: ServeConfig, store: JobStore, scheduler: Scheduler, changes: Changes) -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[Depends(_authorizer(config))])

    def found(job_id: str) -> Job:
        job = store.get(job_id) if job_id.isalnum() else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    _file_routes(router, store, found)

    @router.get("/health", summary="200 once the server is ready")
    def health(request: Request) -> JSONResponse:
        if not request.app.state.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", "version": rvmkit.__version__, "workers": config.workers,
                             "running": len(scheduler.running), "queued": store.count("queued")})

    @router.post("/jobs", status_code=202, openapi_extra=UPLOAD_BODY, summary="upload a video: a new job")
    async def create_job(request: Request) -> JSONResponse:
        job = await _accept(request, config, store)
        scheduler.wake()
        changes.notify()
        return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    @router.get("/jobs", summary="the jobs, newest first")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [job_json(job) for job in store.list()]}

    @router.get("/jobs/{job_id}", summary="one job: state, progress, error, outputs")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_json(found(job_id))

    @router.get("/jobs/{job_id}/events", summary="the job as Server-Sent Events, until it ends",
                response_class=StreamingResponse)
    async def job_events(job_id: str) -> StreamingResponse:
        found(job_id)
        return StreamingResponse(_events(store, changes, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.delete("/jobs/{job_id}", summary="cancel a job and delete its files",
                   responses={200: {"description": "the job was queued or running: now cancelled"},
                              204: {"description": "the job had ended: record and files deleted"}})
    async def delete_job(job_id: str) -> Response:
        job = found(job_id)
        if job.state not in ACTIVE:  # files first, then the record: on a full disk that frees the space
            await run_in_threadpool(store.remove, job_id)
            changes.notify()
            return Response(status_code=204)
        if await run_in_threadpool(scheduler.cancel, job_id):
            shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
            return JSONResponse(job_json(found(job_id)))
        await run_in_threadpool(store.remove, job_id)  # it ended meanwhile
        changes.notify()
        return Response(status_code=204)

    return router


def _file_routes(router: APIRouter, store: JobStore, found: Any) -> None:
    """Downloads: the outputs (with Range) and the contact sheet."""

    @router.get("/jobs/{job_id}/outputs/{name}", summary="download an output (HTTP Range supported)",
                response_class=FileResponse)
    def get_output(job_id: str, name: str) -> FileResponse:
        job = found(job_id)
        if job.state != "done" or name not in job.outputs or name == "preview":
            raise HTTPException(404, f"job {job_id} has no output {name!r}"
                                     + ("" if job.state == "done" else f" (it is {job.state})"))
        path = store.outputs_dir(job.id) / job.outputs[name]
        return FileResponse(path, headers={"Content-Disposition": _attachment(_download_name(job, name))})

    @router.get("/jobs/{job_id}/preview", summary="the contact sheet (PNG)", response_class=FileResponse)
    def get_preview(job_id: str) -> FileResponse:
        job = found(job_id)
        if job.state != "done" or "preview" not in job.outputs:
            raise HTTPException(404, f"job {job_id} has no preview")
        return FileResponse(store.outputs_dir(job.id) / job.outputs["preview"], media_type="image/png")


async def _accept(request: Request, config: ServeConfig, store: JobStore) -> Job:
    """Stream the upload into a new job folder, check it, and queue the job; on any refusal (or a client
    that goes away) the folder is removed."""
    if store.count("queued") >= config.max_queued:
        raise UploadError(429, f"the queue is full ({config.max_queued} jobs waiting); try again later",
                          limit="queue")
    length = request.headers.get("content-length", "0")
    length = int(length) if length.isdigit() else 0
    if length > config.max_upload_bytes:  # the whole request: file, background image and fields
        raise UploadError(413, f"the upload is larger than this server's limit of "
                               f"{config.max_upload_bytes / MB:g} MB", limit="upload_size")
    if shutil.disk_usage(store.jobs_dir).free - length < config.min_free_bytes:
        raise UploadError(507, "not enough free disk space on the server for this upload")
    job_id = new_job_id()
    folder = store.job_dir(job_id)
    folder.mkdir()
    try:
        try:
            upload = await receive(request.stream(), request.headers.get("content-type", ""), folder,
                                   STORED_AS, TEXT_FIELDS, config.max_upload_bytes)
        except ClientDisconnect:
            raise UploadError(400, "the upload was interrupted") from None
        video, image = upload.files.get("file"), upload.files.get("background_file")
        if video is None:
            raise UploadError(422, "no video in the upload: send it as the multipart file field 'file'")
        for part in (video, image):
            if part is not None and part.size == 0:
                raise UploadError(422, f"'{part.name}': the uploaded file is empty (0 bytes)")
        options = job_options(upload.fields, image.path.name if image else None, config)
        info = await run_in_threadpool(check_upload, video.path, video.name, options,
                                       store.outputs_dir(job_id), image.path if image else None, config)
        job = Job(id=job_id, state="queued", name=video.name, input=video.path.name, options=options,
                  info=info, frames_total=info["frames"], created_at=time.time())
        if not store.add(job, max_queued=config.max_queued):
            raise UploadError(429, f"the queue is full ({config.max_queued} jobs waiting); try again later",
                              limit="queue")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return store.get(job_id)


async def _events(store: JobStore, changes: Changes, job_id: str) -> AsyncIterator[str]:
    """`event: job` with the job's JSON at each change, until it ends (or is deleted: `event: deleted`)."""
    last = None
    yield "retry: 2000\n\n"
    while True:
        seen = changes.version
        job = store.get(job_id)
        if job is None:
            yield f"event: deleted\ndata: {json.dumps({'id': job_id})}\n\n"
            return
        data = json.dumps(job_json(job))
        if data != last:
            yield f"event: job\ndata: {data}\n\n"
            last = data
        if job.state not in ACTIVE:
            return
        if not await changes.wait(seen, KEEPALIVE_S):
            yield ": keep-alive\n\n"


def _pages(app: FastAPI, live: Live) -> None:
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/live", include_in_schema=False)
    def live_root() -> Response:
        return RedirectResponse("/live/")

    @app.get("/live/{path:path}", include_in_schema=False)
    def live_file(path: str) -> FileResponse:
        """The static in-browser page, cross-origin isolated (multi-threaded WebAssembly needs it)."""
        return FileResponse(live.file(path), headers=ISOLATION_HEADERS)
