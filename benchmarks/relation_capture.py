"""Capture overhead of the Relation Networks and Learning Region Features detectors (random weights,
paper-size defaults: R50-FPN, 300 proposals, 16 heads; 7×7 parts over 28×28 samples), one image run
end to end through the family (preprocess, forward, post-process, trace) without and with capture.

Repetitions are interleaved in one process and the medians compared.  Last lines:
``<model> capture_overhead <ratio>``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from relviz import zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--models", nargs="+", default=["relation-rcnn-r50-fpn", "regionfeat-rcnn-r50-fpn"])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(args.height, args.width, 3), dtype=np.uint8)
    source = {"path": "random", "kind": "image", "frame": 0, "size": [args.width, args.height]}
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {args.device}"
    )
    print(f"input: {args.width}×{args.height} resized to the model's 800 shorter side, repeats {args.repeats}")
    results = {}
    for name in args.models:
        model = zoo.load_model(name, weights="none", device=args.device)
        sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)

        def once(capture: bool, model=model, sync=sync) -> int:
            options = zoo.RunOptions(threshold=0.0, capture=capture)
            with torch.inference_mode():
                trace = model.family.run(model, [image], source, options)
            sync()
            return sum(a.nbytes for a in trace.arrays.values())

        once(False)  # warm-up
        size = once(True)
        times: dict[str, list[float]] = {"plain": [], "capture": []}
        for _ in range(args.repeats):
            for label, capture in (("plain", False), ("capture", True)):
                start = time.perf_counter()
                once(capture)
                times[label].append(time.perf_counter() - start)
        medians = {k: statistics.median(v) for k, v in times.items()}
        for label, values in times.items():
            print(f"{name} {label:>8}: median {medians[label]:.2f} s (min {min(values):.2f}, max {max(values):.2f})")
        print(f"{name} trace tensors: {size / 2**20:.1f} MiB in memory")
        results[name] = medians["capture"] / medians["plain"]
    for name, ratio in results.items():
        print(f"{name} capture_overhead {ratio:.3f}")


if __name__ == "__main__":
    main()
