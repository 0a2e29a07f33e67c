"""Capture overhead: DETR-R50 (random weights) on one 800×1066 image, plain forward against a forward
that records every attention layer and turns the recording into a trace.

Repetitions are interleaved in one process and the medians compared.  Last line:
``capture_overhead <ratio>``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from relviz import zoo
from relviz.core.capture import recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1066)
    args = parser.parse_args()

    model = zoo.load_model("detr-r50", weights="none", device=args.device)
    x = torch.randn(1, 3, args.height, args.width, device=model.device)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)

    def plain() -> None:
        model.module(x)
        sync()

    def captured() -> None:
        with recording() as rec:
            model.module(x)
        rec.finish(0)
        sync()

    times: dict[str, list[float]] = {"plain": [], "capture": []}
    with torch.inference_mode():
        plain()  # warm-up
        captured()
        for _ in range(args.repeats):
            for name, fn in (("plain", plain), ("capture", captured)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {model.device}")
    print(f"input: 1×3×{args.height}×{args.width}, repeats {args.repeats}")
    for name, values in times.items():
        print(f"{name:>8}: median {medians[name] * 1000:.1f} ms  (min {min(values) * 1000:.1f}, "
              f"max {max(values) * 1000:.1f})")
    print(f"capture_overhead {medians['capture'] / medians['plain']:.3f}")


if __name__ == "__main__":
    main()
