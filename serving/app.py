"""The demo's web server: the page, `POST /api/predict` and `GET /api/info` (FastAPI).

`POST /api/predict` takes a multipart upload in the field `video` and answers
`{"heads": {HEAD: [{"label", "probability"}, ...]}, "timings_ms": {...}, ...}`
(see `serving.inference.DemoService.predict`). Every error is `{"detail": message}`
(one string, also for a malformed request): no file or an empty one (400), one over
the size limit (413: counted while the body streams in, whatever its framing, and a
declared size over it refused before reading), a field that is not a file or a file
that is not a readable video or has frames over the pixel budget (422); too many
waiting requests get 503.

Every response carries the headers of `serving.security` (a Content-Security-Policy,
no sniffing, no framing, no referrer); bound to one interface, the server answers
only the `Host` names of that interface and of localhost (against DNS rebinding).
There is no `/docs` and no `/openapi.json`: the API is the two routes above.

`serve` answers at once: the page and `GET /api/info` (`"ready": false` meanwhile)
are served while torch, the model and then MediaPipe load on a background thread (torch
alone takes about 3 s to import); a clip sent before that waits for them.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING, Callable, Sequence

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from models.zoo import resolve
from serving.security import SecurityHeaders, allowed_hosts, security_headers
from utils.constants import VIDEO_SUFFIXES
from utils.errors import UserError, shorten

if TYPE_CHECKING:  # torch loads with the service, after the server answers
    from serving.inference import DemoService, VideoFile

#: How long a request waits for the model to finish loading.
LOAD_WAIT_S = 300.0

#: Bytes read from an upload at a time.
CHUNK = 1 << 20
#: Bytes a request body may hold beyond the upload limit: the multipart framing
#: (boundaries, part headers, the file name).
FORM_OVERHEAD = 64 * 1024
#: What a `video` field that is not a file gets.
NOT_A_FILE = (
    "the field 'video' is not a file: send the video as a file in the multipart "
    "field 'video' (curl -F video=@clip.mp4)"
)
#: The suffix an upload is saved with when its name has no video suffix.
FALLBACK_SUFFIX = ".mp4"


def page() -> str:
    """The demo page (HTML, CSS and JS in one file; no external resources)."""
    return resources.files("serving").joinpath("static/index.html").read_text("utf-8")


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"the upload is larger than the limit of {limit / 1e6:g} MB "
        "(demo.py --max_upload_mb)",
    )


def _invalid(errors: list[dict]) -> str:
    """FastAPI's list of validation errors as one sentence (the page shows text)."""
    if {str(error["loc"][-1]) for error in errors} == {"video"}:
        return NOT_A_FILE
    return shorten(
        "invalid request: "
        + "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in errors
        )
    )


class ServiceLoader:
    """The demo's service, built on a background thread (torch and the model load
    there) while the server already answers.

    Args:
        build: makes the service; a `UserError` it raises is kept and reported.
    """

    def __init__(self, build: Callable[[], DemoService]) -> None:
        self.error: str | None = None
        self._service: DemoService | None = None
        self._done = threading.Event()
        self.on_error: Callable[[], None] = lambda: None
        threading.Thread(target=self._build, args=(build,), daemon=True).start()

    def _build(self, build: Callable[[], DemoService]) -> None:
        try:
            self._service = build()
        except UserError as error:
            self.error = str(error)
        except Exception as error:  # pylint: disable=broad-exception-caught
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self._done.set()
        if self.error is not None:
            self.on_error()

    def loaded(self) -> DemoService | None:
        """The service if it is built, else None."""
        return self._service if self._done.is_set() else None

    def get(self, timeout: float = LOAD_WAIT_S) -> DemoService:
        """The service, waiting for it to be built.

        Raises:
            HTTPException: 503 when it failed or is not built within `timeout`.
        """
        if not self._done.wait(timeout) or self._service is None:
            raise HTTPException(
                status_code=503,
                detail=f"the model is not loaded ({self.error or 'still loading'})",
            )
        return self._service


def _save_upload(upload: UploadFile, folder: Path, limit: int) -> VideoFile:
    """Copy the upload into `folder` in chunks, refusing more than `limit` bytes."""
    # pylint: disable-next=import-outside-toplevel
    from serving.inference import VideoFile

    name = Path(upload.filename or "upload").name
    suffix = Path(name).suffix.lower()
    target = folder / f"clip{suffix if suffix in VIDEO_SUFFIXES else FALLBACK_SUFFIX}"
    size = 0
    with target.open("wb") as file:
        while chunk := upload.file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            file.write(chunk)
    if size == 0:
        raise HTTPException(status_code=400, detail=f"{name}: the file is empty")
    return VideoFile(target, name)


def create_app(
    service: DemoService | ServiceLoader,
    *,
    max_upload_bytes: int,
    hosts: list[str] | None = None,
) -> FastAPI:
    """The FastAPI application around a model.

    Args:
        service: the model and its preprocessing, or a loader still building it.
        max_upload_bytes: the largest upload accepted.
        hosts: the `Host` names answered (`serving.security.allowed_hosts`); None
            answers any.
    """
    loader = service if isinstance(service, ServiceLoader) else None
    app = FastAPI(
        title="signpipe demo", docs_url=None, redoc_url=None, openapi_url=None
    )
    page_html = page()
    headers = security_headers(page_html)
    too_large = _too_large(max_upload_bytes).detail
    body_limit = max_upload_bytes + FORM_OVERHEAD

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # Starlette's own body limit says "Content Too Large": say which limit.
        detail = too_large if error.status_code == 413 else str(error.detail)
        return JSONResponse(
            {"detail": detail}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError):
        return JSONResponse({"detail": _invalid(list(error.errors()))}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(_: Request, error: Exception) -> JSONResponse:
        # Sent from outside the middleware: the security headers are added here.
        return JSONResponse(
            {
                "detail": f"the server failed on this request "
                f"({type(error).__name__}); its log has the details"
            },
            status_code=500,
            headers=headers,
        )

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        # A declared size over the limit is refused before the body is read.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body_limit:
            return JSONResponse({"detail": too_large}, status_code=413)
        return await call_next(request)

    if hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    app.add_middleware(SecurityHeaders, headers=headers)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page_html

    def current() -> DemoService | None:
        return loader.loaded() if loader is not None else service

    @app.get("/api/info")
    def info() -> dict:
        loaded = current()
        if loaded is None:
            about = {"ready": False, "loading": "the model", "error": loader.error}
        else:
            about = loaded.info()
        return {**about, "max_upload_mb": max_upload_bytes / 1e6}

    # A plain `def`: FastAPI runs it in its thread pool, so uploads are read and
    # clips processed while the event loop keeps accepting requests. The body is
    # counted while it streams in (a chunked one declares no size): past the limit,
    # reading stops and the answer is 413, so no more than that reaches the disk.
    @app.post("/api/predict", max_body_size=body_limit)
    def predict(video: UploadFile | None = File(default=None)) -> dict:
        if video is None:
            raise HTTPException(
                status_code=400,
                detail="no file: send the video as the multipart field 'video'",
            )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="signpipe-demo-") as scratch:
            saved = _save_upload(video, Path(scratch), max_upload_bytes)
            upload_ms = (time.perf_counter() - start) * 1e3
            model = loader.get() if loader is not None else service
            # pylint: disable-next=import-outside-toplevel
            from serving.inference import Busy

            try:
                result = model.predict(saved)
            except UserError as error:
                raise HTTPException(status_code=422, detail=str(error)) from None
            except Busy as error:
                raise HTTPException(status_code=503, detail=str(error)) from None
        result["timings_ms"] = {"upload": round(upload_ms, 1), **result["timings_ms"]}
        result["timings_ms"]["total"] = round((time.perf_counter() - start) * 1e3, 1)
        result["file"] = saved.display_name
        return result

    return app


def serve(
    checkpoint: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_mb: float,
    workers: int = 1,
    ensemble: Sequence[Path] = (),
) -> int:
    """`demo.py`: load the model (averaged with the `ensemble` checkpoints, see
    `serving.inference.load_model`), then serve the page until interrupted."""
    # pylint: disable-next=import-outside-toplevel
    import uvicorn

    start = time.perf_counter()
    model_file = resolve(checkpoint)  # a missing file: one error line, exit 2
    for member in ensemble:  # a missing member too, before the server starts
        resolve(member)

    def build() -> DemoService:
        # pylint: disable-next=import-outside-toplevel
        from serving.inference import DemoService, load_model

        loaded, backend = load_model(model_file, ensemble)
        # MediaPipe loads next, on its own thread: the clips wait for it.
        built = DemoService(loaded, backend, workers=workers, warm_up_now=False)
        about = built.info()
        averaged = (
            f", averaged with {len(about['ensemble'])} more checkpoint(s)"
            if about["ensemble"]
            else ""
        )
        print(
            f"model loaded in {time.perf_counter() - start:.1f} s ({backend}: "
            f"{about['feature_extractor']} + {about['transformer']}{averaged})",
            flush=True,
        )
        built.start_warm_up()
        return built

    loader = ServiceLoader(build)
    app = create_app(
        loader, max_upload_bytes=int(max_upload_mb * 1e6), hosts=allowed_hosts(host)
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise UserError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); choose "
            "another --port or --host"
        ) from None
    # Listening now: a client that connects as soon as the address is printed waits
    # in the backlog until the server accepts, rather than being refused.
    listener.listen(128)
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning")
    )

    def stop() -> None:
        server.should_exit = True

    loader.on_error = stop
    if loader.error is not None:  # it failed before `stop` was its callback
        stop()
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"signpipe demo: {checkpoint}; listening on http://{shown_host}:{port}/ "
        "(Ctrl+C stops); loading the model",
        flush=True,
    )
    server.run(sockets=[listener])
    if loader.error is not None:
        raise UserError(loader.error)
    return 0
