"""Serve a demo page where a video goes in and a sign comes out.

python3 demo.py [CHECKPOINT] [--ensemble CHECKPOINT ...] [--host 127.0.0.1]
                [--port 8000] [--max_upload_mb 50] [--workers 1]

CHECKPOINT is a train.py checkpoint (run with torch on the CPU) or a model.onnx
written by export.py (run with onnxruntime; its model.json must lie beside it), or
the name of a model in the zoo (`python3 -m models.zoo list`); default:
wlasl300_hands, the shipped WLASL300 hand-landmark model (300 ASL signs). The
page takes an uploaded video, or one recorded with the webcam where the browser
allows it, and shows the top-5 glosses, each HamNoSys head's prediction, the
landmarks over a few frames of the clip and how long each step took. Its JSON API:
`POST /api/predict` with the multipart field `video`. The clip is made as
predict.py makes it (MediaPipe landmarks for landmark models, frames for image
models, the checkpoint's temporal sampling). With --ensemble, the class
probabilities of CHECKPOINT and more checkpoints are averaged (one forward pass
each): `python3 demo.py wlasl300_hands --ensemble wlasl300_hands_bones`.

It is a demo server, not hardened for the open internet (no TLS, no accounts):
docs/guide/security.md says what it promises (Host check, security headers, upload
and pixel limits) and how to expose it behind a reverse proxy.

Exit status: 0 when stopped with Ctrl+C; 2 on a bad checkpoint, a port in use or a
missing dependency.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.cli import add_ensemble_option, positive_float, port, positive_int, run_cli

#: The zoo model served when no CHECKPOINT is given: real ASL signs.
DEFAULT_CHECKPOINT = Path("wlasl300_hands")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 demo.py",
        description=__doc__.splitlines()[0],
        epilog="The page and its API: docs/guide/demo.md; what the server "
        "promises and its limits: docs/guide/security.md.",
    )
    parser.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        default=DEFAULT_CHECKPOINT,
        metavar="CHECKPOINT",
        help="a train.py checkpoint, an export.py model.onnx or a model zoo name "
        "(default: %(default)s, the shipped WLASL300 model)",
    )
    add_ensemble_option(
        parser,
        "more train.py checkpoints or model zoo names whose class "
        "probabilities are averaged with CHECKPOINT's; each costs one more forward "
        "pass; they must predict the same heads and classes from clips made alike "
        "(not with an export.py model.onnx)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on; bound to one, the server answers only its "
        "name and localhost's as Host (default: %(default)s, this machine only)",
    )
    parser.add_argument(
        "--port", type=port, default=8000, help="default: %(default)s (0: any free)"
    )
    parser.add_argument(
        "--max_upload_mb",
        type=positive_float,
        default=50,
        metavar="N",
        help="largest accepted upload in MB (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="clips processed at the same time; more wait in a queue (default: "
        "%(default)s)",
    )
    return parser.parse_args(argv)


def demo(args: argparse.Namespace) -> int:
    """Run the server; the library (torch, FastAPI) loads only now, so --help
    answers at once and a missing dependency is a one-line error."""
    # pylint: disable-next=import-outside-toplevel
    from serving.app import serve

    return serve(
        args.checkpoint,
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        workers=args.workers,
        ensemble=args.ensemble,
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        0 when stopped, 2 on a user error (bad checkpoint, port in use).
    """
    args = parse_args(argv)
    try:
        return run_cli(lambda: demo(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
