"""The README's figure gallery: one figure per model family, at the ``column`` preset, from the bundled demos.

    python scripts/gallery.py [--out docs/gallery] [--dpi 120]

Each bundled demo model runs on a bundled input (on the CPU, a few seconds each); its figure is written as
PNG with its recipe beside it, and the ``relviz export`` command that draws the same figure is printed.
The recipes name the model and the input (not a trace), so ``relviz export --recipe`` redraws each one from
the repository alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (file, model, input, threshold, view, options): what each family's figure shows is in the README
GALLERY = [
    ("detr-decoder-objects", "demo-detr", "resources/scene-1.png", 0.2, "decoder-objects", {}),
    ("detr-encoder-attention", "demo-detr", "resources/scene-1.png", 0.2, "encoder-attention", {}),
    ("relation-pairs", "demo-relation", "resources/scene-1.png", 0.5, "relation-pairs", {"objects": [2, 0]}),
    ("region-parts", "demo-regionfeat", "resources/scene-1.png", 0.5, "region-parts", {"extra": {}}),
    ("lrnet-local-relation", "demo-lrnet", "resources/tiles/patch-0.png", 0.7, "local-relation",
     {"point": [16.0, 16.0], "head": "5"}),
    ("nonlocal-clip", "demo-nonlocal-clip", "resources/clip-0.mp4", 0.7, "nonlocal",
     {"point": [40.0, 40.0], "top_k": 12}),
]


def command(model: str, source: str, threshold: float, view: str, options: dict, out: str) -> str:
    """The ``relviz export`` command line that draws the same figure."""
    parts = ["relviz export", f"--model {model}", f"--input {source}", f"--threshold {threshold:g}",
             f"--view {view}", "--preset column"]
    for k in options.get("objects", []):
        parts.append(f"--object {k}")
    if "point" in options:
        parts.append(f"--point {options['point'][0]:g},{options['point'][1]:g}")
    if "head" in options:
        parts.append(f"--head {options['head']}")
    if "top_k" in options:
        parts.append(f"--top-k {options['top_k']}")
    return " ".join([*parts, f"--out {out}"])


def _relative_paths(recipe_file: Path) -> None:
    """Rewrite the recipe's paths relative to its folder (``relviz export --recipe`` reads them so), so the
    recipes in the repository name no machine's folders."""
    data = json.loads(recipe_file.read_text())
    base = recipe_file.parent
    data["output"] = os.path.relpath(data["output"], base)
    data["source"]["input"] = os.path.relpath(data["source"]["input"], base)
    if isinstance(data.get("input"), dict) and data["input"].get("path"):
        data["input"]["path"] = os.path.relpath(data["input"]["path"], base)
    recipe_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main() -> None:
    from relviz import __version__
    from relviz.export import export_figure, make_recipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "gallery"))
    p.add_argument("--dpi", type=int, default=120)
    args = p.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, model, source, threshold, view, options in GALLERY:
        out = folder / f"{name}.png"
        recipe = make_recipe({
            "relviz": __version__, "view": view, "dpi": args.dpi, "output": str(out),
            "options": {**options, "preset": "column"},
            "source": {"model": model, "input": str(ROOT / source), "threshold": threshold, "device": "cpu"},
        })
        t0 = time.perf_counter()
        _, recipe_file = export_figure(recipe)
        _relative_paths(recipe_file)
        print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}  ({time.perf_counter() - t0:.1f} s)")
        print(f"    {command(model, source, threshold, view, options, out.name)}")


if __name__ == "__main__":
    main()
