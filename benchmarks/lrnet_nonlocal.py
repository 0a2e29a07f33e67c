"""LR-Net and non-local models: forward time, capture overhead, and the LR layer's banded memory.

Prints medians over repetitions (CPU timings on shared machines are noisy); the runs are interleaved
so the ratios compare like with like.  Usage: ``python -m benchmarks.lrnet_nonlocal [--size 224] [--reps 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import torch

from relviz.core.capture import recording
from relviz.models.lrnet import LocalRelation2d, LRNet
from relviz.models.nonlocal_net import NonLocalResNet


def _time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def capture_overhead(name: str, net: torch.nn.Module, x: torch.Tensor, reps: int, full: bool | None = None) -> None:
    net.eval()
    if full is not None:
        net.set_capture_full(full)

    def plain():
        with torch.no_grad():
            net(x)

    def captured():
        with torch.no_grad(), recording() as rec:
            net(x)
        rec.finish(0)

    plain()
    rows = []
    for _ in range(reps):  # interleaved
        rows.append((_time(plain, 1), _time(captured, 1)))
    p = statistics.median(r[0] for r in rows)
    c = statistics.median(r[1] for r in rows)
    what = "" if full is None else (" (full /weight, /appearance)" if full else " (factors only)")
    print(
        f"{name:<34} {tuple(x.shape)!s:<22} plain {p * 1e3:8.1f} ms  captured{what} {c * 1e3:8.1f} ms  "
        f"ratio {c / p:5.2f}"
    )


def banded_memory(size: int, channels: int, budget: int) -> None:
    """Peak Python-visible allocations are not torch's; use the largest band buffer as the measure."""
    layer = LocalRelation2d(channels, 7, 8).eval()
    layer.max_chunk_elements = budget
    x = torch.randn(1, channels, size, size)
    tracemalloc.start()
    t = time.perf_counter()
    with torch.no_grad():
        layer(x)
    dt = time.perf_counter() - t
    tracemalloc.stop()
    k2 = 49
    band_rows = max(1, min(size, budget // (channels * k2 * size)))
    band_mb = channels * k2 * band_rows * size * 4 / 2**20
    whole_mb = channels * k2 * size * size * 4 / 2**20
    print(
        f"LR layer 7×7, C={channels}, {size}×{size}: {dt:6.2f} s; unfolded band {band_mb:7.1f} MB "
        f"({band_rows} rows) instead of {whole_mb:8.1f} MB for the whole map"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    x = torch.randn(1, 3, args.size, args.size)
    capture_overhead("LR-Net-26", LRNet({"preset": "lrnet-26"}), x, args.reps, full=False)
    capture_overhead("LR-Net-26", LRNet({"preset": "lrnet-26"}), x, args.reps, full=True)
    capture_overhead("ResNet-50 + 5 NL (embedded)", NonLocalResNet({}), x, args.reps)
    capture_overhead("ResNet-50 + 5 NL (dot)", NonLocalResNet({"instantiation": "dot"}), x, args.reps)
    clip = torch.randn(1, 3, 8, args.size, args.size)
    capture_overhead("C2D ResNet-50 + 5 NL, 8 frames", NonLocalResNet({"clip": True}), clip, max(1, args.reps - 1))
    banded_memory(256, 64, 1 << 22)


if __name__ == "__main__":
    main()
