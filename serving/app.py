"""The demo's web server: the page, `POST /api/predict` and `GET /api/info` (FastAPI).

`POST /api/predict` takes a multipart upload in the field `video` and answers
`{"heads": {HEAD: [{"label", "probability"}, ...]}, "timings_ms": {...}, ...}`
(see `serving.inference.DemoService.predict`). Bad uploads get a 4xx status and
`{"detail": message}`: no file or an empty one (400), one over the size limit (413),
a file that is not a readable video (422); too many waiting requests get 503.
"""

from __future__ import annotations

import socket
import tempfile
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from serving.inference import Busy, DemoService, VideoFile, load_model
from utils.constants import VIDEO_SUFFIXES
from utils.errors import UserError

#: Bytes read from an upload at a time.
CHUNK = 1 << 20
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


def _save_upload(upload: UploadFile, folder: Path, limit: int) -> VideoFile:
    """Copy the upload into `folder` in chunks, refusing more than `limit` bytes."""
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


def create_app(service: DemoService, *, max_upload_bytes: int) -> FastAPI:
    """The FastAPI application around a loaded model.

    Args:
        service: the model and its preprocessing.
        max_upload_bytes: the largest upload accepted.
    """
    app = FastAPI(title="signpipe demo", docs_url=None, redoc_url=None)
    page_html = page()

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        # A declared size over the limit is refused before the body is read.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_upload_bytes + CHUNK:
            error = _too_large(max_upload_bytes)
            return JSONResponse({"detail": error.detail}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page_html

    @app.get("/api/info")
    def info() -> dict:
        return {**service.info(), "max_upload_mb": max_upload_bytes / 1e6}

    # A plain `def`: FastAPI runs it in its thread pool, so uploads are read and
    # clips processed while the event loop keeps accepting requests.
    @app.post("/api/predict")
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
            try:
                result = service.predict(saved)
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
) -> int:
    """`demo.py`: load the model, then serve the page until interrupted."""
    # pylint: disable-next=import-outside-toplevel
    import uvicorn

    start = time.perf_counter()
    loaded, backend = load_model(checkpoint)
    service = DemoService(loaded, backend, workers=workers)
    app = create_app(service, max_upload_bytes=int(max_upload_mb * 1e6))
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
    shown_host = f"[{host}]" if ":" in host else host
    about = service.info()
    print(
        f"signpipe demo: {checkpoint} ({backend}: {about['feature_extractor']} + "
        f"{about['transformer']}) loaded in {time.perf_counter() - start:.1f} s; "
        f"listening on http://{shown_host}:{port}/ (Ctrl+C stops)",
        flush=True,
    )
    server.run(sockets=[listener])
    return 0
