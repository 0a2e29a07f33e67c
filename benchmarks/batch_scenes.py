"""Write generated detection scenes to a folder, for ``relviz batch`` runs over many inputs.

    python benchmarks/batch_scenes.py OUT_FOLDER [--n 300] [--seed 2026]

Scene i is ``relviz.train.scenes.make_scene(seed, i)`` (the demo detectors' data, the same bytes on every
machine) saved as ``scene-000i.png``; ``coco.json`` beside them holds their boxes as COCO annotations, so
the folder also serves as a COCO json input.  (``relviz.batch`` itself never imports the training package.)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2

from relviz.train.scenes import coco_ground_truth, make_scene


def write_scenes(folder: Path, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    scenes, paths = [], []
    for i in range(n):
        scene = make_scene(seed, i)
        path = folder / f"scene-{i:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        scenes.append(scene)
        paths.append(path)
    coco = coco_ground_truth(scenes)
    for entry, path in zip(coco["images"], paths, strict=True):
        entry["file_name"] = path.name
    (folder / "coco.json").write_text(json.dumps(coco), encoding="utf-8")
    return paths


def cached_scenes(folder: Path, n: int, seed: int = 2026) -> Path:
    """``folder`` holding exactly ``n`` scenes: kept when a previous run wrote them, written afresh otherwise."""
    if len(list(folder.glob("scene-*.png"))) != n:
        shutil.rmtree(folder, ignore_errors=True)
        write_scenes(folder, n, seed)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    paths = write_scenes(Path(args.out), args.n, args.seed)
    print(f"wrote {len(paths)} scenes and coco.json to {args.out}")


if __name__ == "__main__":
    main()
