"""Export a trained checkpoint's whole pipeline to ONNX, with a JSON sidecar.

python3 export.py CHECKPOINT --output model.onnx [--tolerance 1e-4]

Writes `model.onnx` (feature extractor, temporal encoder and every head in one graph;
batch and time axes dynamic) and `model.json` beside it (inputs, preprocessing,
outputs, every head's class names), then runs the ONNX file with onnxruntime on
generated clips of two sizes and compares it with torch: the largest logit
difference and the top-1 agreement are printed.

Exit status: 0 when the export checks out; 2 on a bad checkpoint or output path, a
model the exporter cannot trace, or a mismatch with torch (the files are kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.cli import positive_float, run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 export.py",
        description=__doc__.splitlines()[0],
        epilog="The sidecar format: docs/guide/demo.md.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="FILE.onnx",
        help="the ONNX file to write; the sidecar goes beside it as FILE.json",
    )
    parser.add_argument(
        "--tolerance",
        type=positive_float,
        default=None,
        metavar="X",
        help="largest allowed |logit difference| against torch (default: 1e-4)",
    )
    return parser.parse_args(argv)


def export(args: argparse.Namespace) -> int:
    """Run the command; the library (and torch) loads only now, so --help answers at
    once and a missing dependency is a one-line error."""
    # pylint: disable-next=import-outside-toplevel
    from evaluation.export import export_command

    return export_command(args.checkpoint, args.output, args.tolerance)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        0 when the export checks out, 2 on a user error or a mismatch with torch.
    """
    args = parse_args(argv)
    return run_cli(lambda: export(args))


if __name__ == "__main__":
    sys.exit(main())
