"""``relviz batch``: its options and exit codes (registered by :mod:`relviz.cli`).

Exit codes: 0 when every input is done; 2 on bad input before any work (one sentence); when some inputs
failed, ``10 + n`` for ``n`` failed inputs (11 for one, … 109 for 99 or more), with the count and the
manifest's path on stderr — so ``$?`` says how many failed without clashing with 1 (a bug in relviz),
2 (bad input) or 130 (interrupted).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

FAILED_BASE = 10
FAILED_MAX = 99


def failed_exit_code(failed: int) -> int:
    return 0 if failed <= 0 else FAILED_BASE + min(failed, FAILED_MAX)


def add_parser(sub, add_max_pixels) -> argparse.ArgumentParser:
    p = sub.add_parser("batch", help="run a model over a set of inputs: traces, figures, manifest, statistics")
    src = p.add_argument_group("model")
    src.add_argument("--model", help="zoo model name (see `relviz models`)")
    src.add_argument("--weights", help="checkpoint file (.pth, .pt, .safetensors)")
    src.add_argument("--family", help="model family, when the checkpoint's keys do not say")
    src.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (under torchrun: each rank's GPU)")
    src.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    src.add_argument("--threshold", type=float, default=0.7, help="detection score threshold (0..1)")
    src.add_argument("--resize", type=int, help="model input's shorter side (0 keeps the size)")
    src.add_argument("--clip-length", type=int, help="frames per clip (clip models)")
    p.add_argument("--inputs", required=True,
                   help="a folder, a quoted glob ('data/**/*.jpg'), a list file (.txt) or a COCO json")
    p.add_argument("--image-root", help="folder a COCO json's file names are relative to (default: beside it)")
    p.add_argument("--frame-step", type=int,
                   help="videos: every Nth frame (image models, default 1) or a clip every N frames (clip models, "
                        "default the clip length)")
    p.add_argument("--out", required=True, help="output folder (created; a re-run resumes in it)")
    p.add_argument("--view", action="append", default=[], metavar="VIEW",
                   help="also draw this figure per input (repeatable; see `relviz export --help-views`)")
    p.add_argument("--format", default="png", dest="figure_format", help="per-input figures: png, pdf or svg")
    p.add_argument("--dpi", type=int, default=150, help="per-input PNG figures' DPI")
    p.add_argument("--stats", action="store_true", help="aggregate relation statistics: stats.json and stats/*.pdf")
    p.add_argument("--no-traces", action="store_true", help="keep no trace files (for large sets with --stats)")
    p.add_argument("--workers", type=int, default=2, help="threads decoding inputs ahead of the model (0: none)")
    add_max_pixels(p)
    return p


def run(args: argparse.Namespace) -> int:
    from relviz.batch.runner import BatchOptions, run_batch
    from relviz.core import limits
    from relviz.core.errors import BadInputError

    if not args.model and not args.weights:
        raise BadInputError("give --model NAME or --weights PATH")
    if not 0.0 <= args.threshold <= 1.0:
        raise BadInputError(f"--threshold {args.threshold:g} is out of range (0..1)")
    if args.resize is not None and args.resize != 0 and not limits.MIN_RESIZE <= args.resize <= limits.MAX_RESIZE:
        raise BadInputError(f"--resize {args.resize} is out of range (0 keeps the size, else "
                            f"{limits.MIN_RESIZE}..{limits.MAX_RESIZE})")
    if args.clip_length is not None and not 1 <= args.clip_length <= limits.MAX_CLIP_LENGTH:
        raise BadInputError(f"--clip-length {args.clip_length} is out of range (1..{limits.MAX_CLIP_LENGTH})")
    if not limits.MIN_DPI <= args.dpi <= limits.MAX_DPI:
        raise BadInputError(f"--dpi {args.dpi} is out of range ({limits.MIN_DPI}..{limits.MAX_DPI})")
    if args.no_traces and not args.stats and not args.view:
        raise BadInputError("--no-traces without --stats or --view would keep nothing; add --stats")
    options = BatchOptions(
        inputs=args.inputs, out=Path(args.out), model=args.model, weights=args.weights, family=args.family,
        device=args.device, precision=args.precision, threshold=args.threshold, resize=args.resize,
        clip_length=args.clip_length, frame_step=args.frame_step, views=list(args.view),
        figure_format=args.figure_format.lower(), dpi=args.dpi, stats=args.stats, traces=not args.no_traces,
        workers=args.workers, image_root=args.image_root,
    )
    result = run_batch(options)
    manifest_path = Path(args.out) / "manifest.jsonl"
    if result.failed and os.environ.get("RANK", "0") == "0":
        print(f"relviz: {result.failed} of {result.total} inputs failed; their reasons are in {manifest_path}",
              file=sys.stderr)
    return failed_exit_code(result.failed)
