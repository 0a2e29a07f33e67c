"""Images per second of each bundled demo model on CPU, fed 256×256 inputs through the zoo's run path.

The issue asks for ≥ 25 images/s at 256×256 on 2 CPU cores.  Each model runs through ``Family.run``
exactly as ``relviz trace`` does (its own resize and normalisation included), without capture and with
capture, on a 256×256 input from its own generator (scenes as drawn; patches, pair images and clip
frames enlarged to 256×256).  For the clip model one "image" is one frame of an 8-frame clip.

    python benchmarks/demo_throughput.py [--threads 2] [--repeat 20] [--models demo-detr,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relviz.train import longrange, patches, scenes  # noqa: E402
from relviz.train.evaluate import TASKS  # noqa: E402


def _enlarge(image: np.ndarray, size: int = 256) -> np.ndarray:
    k = size // image.shape[0]
    return np.ascontiguousarray(image.repeat(k, 0).repeat(k, 1))


def sample_input(task: str) -> list[np.ndarray]:
    if task == "scenes":
        return [scenes.make_scene(99, 0).image]
    if task == "patches":
        return [_enlarge(patches.make_patch(99, 0)[0])]
    if task == "pairs":
        return [_enlarge(longrange.make_pair_image(99, 0)[0])]
    clip, _ = longrange.make_motion_clip(99, 0)
    return [_enlarge(f) for f in clip]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--models", default=",".join(TASKS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from relviz.zoo import RunOptions, get_model, load_model

    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeat} runs, 256×256 inputs")
    print(f"{'model':22s} {'input':>10s} {'img/s':>8s} {'img/s capture':>14s} {'target':>7s}")
    for name in args.models.split(","):
        if not get_model(name).has_weights:
            print(f"{name:22s} (no bundled weights)")
            continue
        model = load_model(name, device="cpu")
        frames = sample_input(TASKS[name])
        source = {
            "path": "benchmark",
            "kind": "image" if len(frames) == 1 else "video",
            "frame": 0,
            "size": [256, 256],
            "stride": 1,
        }
        rates = []
        for capture in (False, True):
            options = RunOptions(threshold=0.5, capture=capture, clip_length=len(frames))
            times = []
            with torch.inference_mode():
                model.family.run(model, frames, source, options)  # warm-up
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    model.family.run(model, frames, source, options)
                    times.append(time.perf_counter() - t0)
            rates.append(len(frames) / statistics.median(times))
        shape = f"{len(frames)}×256²" if len(frames) > 1 else "256²"
        ok = "ok" if rates[0] >= 25 else "MISSED"
        print(f"{name:22s} {shape:>10s} {rates[0]:8.1f} {rates[1]:14.1f} {ok:>7s}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
