"""Output paths: an output that is an input (the same path, through a symlink, a hard link or ``..``), a
figure or its recipe onto the trace it draws, a missing or unwritable folder, a folder, an unknown suffix,
names at and over the 255-byte limit, and stale temporary files; inputs never change, and legal names work."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from corpus import Case
from corpus._inputs import SMALL, recipe, scene, trace, write_json

WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "demo-lrnet.safetensors"


def _same_file_cases(folder: Path, image: Path) -> list[Case]:
    """``trace --out`` onto its own input, however the path is spelled."""
    (folder / "link.png").symlink_to(image)
    os.link(image, folder / "hard.png")
    (folder / "sub").mkdir()
    spellings = {"same": image, "symlink": folder / "link.png", "hard-link": folder / "hard.png",
                 "dot-dot": folder / "sub" / ".." / image.name, "dot": folder / "." / image.name}
    base = ["trace", "--model", "detr-r50", "--weights", "none", "--input", str(image)]
    cases = [Case(f"trace-out-is-input-{name}", [*base, "--out", str(path)], message="is the input",
                  unchanged=[str(image)]) for name, path in spellings.items()]
    cases.append(Case("trace-input-through-link-out-is-target",
                      ["trace", "--model", "detr-r50", "--weights", "none", "--input", str(folder / "link.png"),
                       "--out", str(image)], message="is the input", unchanged=[str(image)]))
    (folder / "loop-a.png").symlink_to(folder / "loop-b.png")
    (folder / "loop-b.png").symlink_to(folder / "loop-a.png")
    cases.append(Case("trace-input-and-out-a-symlink-loop", [*base[:-1], str(folder / "loop-a.png"),
                                                              "--out", str(folder / "loop-b.png")]))
    if WEIGHTS.is_file():
        ckpt = folder / "demo.safetensors"
        shutil.copyfile(WEIGHTS, ckpt)
        cases.append(Case("trace-out-is-the-checkpoint", ["trace", "--weights", str(ckpt), "--input", str(image),
                                                          "--out", str(ckpt)],
                          message="is the checkpoint", unchanged=[str(ckpt), str(image)]))
    return cases


def _figure_cases(folder: Path, image: Path, tr: Path) -> list[Case]:
    export = ["export", "--trace", str(tr), "--view", "detections"]
    trace_png = folder / "trace-copy.png"  # a trace with a figure's name
    trace_png.write_bytes(tr.read_bytes())
    named_like_recipe = folder / "fig.recipe.json"  # a trace where the figure's recipe would go
    named_like_recipe.write_bytes(tr.read_bytes())
    (folder / "a-folder.png").mkdir()
    own = write_json(folder / "own.recipe.json", recipe(tr, folder / "own.png"))
    onto_trace = write_json(folder / "onto-trace.json", recipe(trace_png, trace_png))
    return [
        Case("export-out-is-the-input-image", ["export", *SMALL, "--input", str(image), "--view", "detections",
                                               "--out", str(image)], message="is the input", unchanged=[str(image)]),
        Case("export-out-is-the-trace", ["export", "--trace", str(trace_png), "--view", "detections",
                                         "--out", str(trace_png)], message="is the trace", unchanged=[str(trace_png)]),
        Case("export-recipe-would-be-the-trace", ["export", "--trace", str(named_like_recipe), "--view",
                                                  "detections", "--out", str(folder / "fig.png")],
             message="its recipe", unchanged=[str(named_like_recipe)]),
        Case("recipe-output-is-its-trace", ["export", "--recipe", str(onto_trace)], message="is the trace",
             unchanged=[str(trace_png), str(onto_trace)]),
        Case("recipe-out-onto-the-recipe-replayed", ["export", "--recipe", str(own), "--out", str(folder / "own.svg")],
             message="is the recipe being replayed", unchanged=[str(own)]),
        Case("export-out-missing-folder", [*export, "--out", str(folder / "missing" / "f.png")],
             message="does not exist"),
        Case("export-out-is-a-folder", [*export, "--out", str(folder / "a-folder.png")], message="is a folder"),
        Case("export-out-unknown-suffix", [*export, "--out", str(folder / "f.gif")], message=".png, .svg or .pdf"),
        Case("export-out-no-suffix", [*export, "--out", str(folder / "figure")], message=".png, .svg or .pdf"),
        Case("export-out-name-too-long", [*export, "--out", str(folder / ("f" * 260 + ".png"))],
             message="longer than 255 bytes"),
        Case("trace-out-is-a-folder", ["trace", "--model", "detr-r50", "--weights", "none", "--input", str(image),
                                       "--out", str(folder / "sub")], message="is a folder"),
        Case("trace-out-missing-folder", ["trace", "--model", "detr-r50", "--weights", "none", "--input",
                                          str(image), "--out", str(folder / "missing" / "t.npz")],
             message="does not exist"),
    ]


def _unwritable_cases(folder: Path, tr: Path) -> list[Case]:
    export = ["export", "--trace", str(tr), "--view", "detections"]
    cases = []
    if sys.platform.startswith("linux"):
        cases.append(Case("export-out-in-proc", [*export, "--out", "/proc/f.png"], message="cannot write"))
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root writes anywhere
        locked = folder / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        cases.append(Case("export-out-unwritable-folder", [*export, "--out", str(locked / "f.png")],
                          message="not writable"))
    return cases


def _valid_cases(folder: Path, tr: Path) -> list[Case]:
    export = ["export", "--trace", str(tr), "--view", "detections", "--dpi", "40"]
    out = folder / "valid"
    out.mkdir()
    old = time.time() - 7200
    stale = out / ".relviz-tmp-0123456789-abcd_123.part.png"  # left by a killed run: removed
    lookalike = out / ".relviz-tmp-draft.part.png"  # not relviz's pattern: kept
    user_file = out / "notes.part"
    for p in (stale, lookalike, user_file):
        p.write_bytes(b"partial")
        os.utime(p, (old, old))
    existing = out / "again.png"
    existing.write_bytes(b"an older figure")
    return [
        Case("valid-250-byte-name", [*export, "--out", str(out / ("f" * 246 + ".png"))], expect=0,
             unchanged=[str(tr)]),
        Case("valid-250-byte-utf8-name", [*export, "--out", str(out / ("é" * 100 + "x" * 46 + ".svg"))], expect=0),
        Case("valid-trace-250-byte-name", ["trace", *SMALL, "--input", str(folder / "scene.png"),
                                           "--out", str(out / ("t" * 246 + ".npz"))], expect=0),
        Case("valid-name-with-spaces-and-dots", [*export, "--out", str(out / "my fig. v2 (final).pdf")], expect=0),
        Case("valid-overwrites-an-older-figure", [*export, "--out", str(existing)], expect=0),
        Case("valid-leaves-other-files-alone", [*export, "--out", str(out / "f.png")], expect=0,
             unchanged=[str(lookalike), str(user_file), str(tr)]),
        Case("valid-relative-dot-dot", [*export, "--out", str(out / ".." / "valid" / "dd.png")], expect=0),
    ]


def make(folder: Path) -> list[Case]:
    image = scene(folder)
    tr = trace(folder, image)
    return [*_same_file_cases(folder, image), *_figure_cases(folder, image, tr), *_unwritable_cases(folder, tr),
            *_valid_cases(folder, tr)]
