"""Command-line options out of range, of the wrong type, non-finite, too long or too deep, and unknown flags;
every one refused before any model is built, in one sentence naming the option; the edges of every range
still work."""

from __future__ import annotations

from pathlib import Path

from corpus import Case
from corpus._inputs import SMALL, scene, trace

DEEP = "[" * 60 + "1" + "]" * 60

# (name, extra options for `export --trace`, what the sentence must say)
VIEW_OPTIONS = [
    ("dpi-huge", ["--dpi", "10000"], "--dpi 10000 is out of range (30..1200)"),
    ("dpi-zero", ["--dpi", "0"], "--dpi 0 is out of range"),
    ("dpi-negative", ["--dpi", "-5"], "--dpi -5 is out of range"),
    ("dpi-float", ["--dpi", "1e3"], "invalid int value"),
    ("dpi-text", ["--dpi", "high"], "invalid int value"),
    ("width-negative", ["--width", "-1"], "--width -1 is out of range"),
    ("width-zero", ["--width", "0"], "--width 0 is out of range"),
    ("width-huge", ["--width", "1e6"], "--width 1e+06 is out of range"),
    ("width-inf", ["--width", "inf"], "--width inf must be a finite number"),
    ("height-nan", ["--height", "nan"], "--height nan must be a finite number"),
    ("png-too-many-pixels", ["--width", "40", "--height", "40", "--dpi", "1200"], "over the limit"),
    ("pdf-too-many-pixels", ["--width", "40", "--height", "30", "--dpi", "600"], "over the limit"),
    ("cmap-unknown", ["--cmap", "nope"], "--cmap nope is not a matplotlib colormap"),
    ("cmap-empty", ["--cmap", ""], '--cmap "" must not be empty'),
    ("point-huge", ["--point", "1e308,5"], "--point 1e+308,5 is outside any image"),
    ("point-nan", ["--point", "nan,1"], "--point nan,1 must be two finite numbers"),
    ("point-inf", ["--point", "5,inf"], "--point 5,inf must be two finite numbers"),
    ("point-three", ["--point", "1,2,3"], "expected X,Y"),
    ("point-text", ["--point", "here"], "expected X,Y"),
    ("point-negative", ["--point=-5,3"], "--point -5,3 is outside any image"),
    ("points-too-many", [a for _ in range(40) for a in ("--point", "5,5")], "--point (given 40 times)"),
    ("object-negative", ["--object", "-1"], "--object -1 is out of range"),
    ("object-huge", ["--object", str(10**30)], "--object 1000000000000000000000000000000 is out of range"),
    ("object-text", ["--object", "first"], "invalid int value"),
    ("frame-negative", ["--frame", "-1"], "--frame -1 is out of range"),
    ("top-k-zero", ["--top-k", "0"], "--top-k 0 is out of range (1..1000)"),
    ("top-k-huge", ["--top-k", "1000000"], "--top-k 1000000 is out of range"),
    ("head-too-high", ["--head", "64"], "--head 64 is out of range"),
    ("head-negative", ["--head", "-1"], "--head -1 is out of range"),
    ("head-text", ["--head", "best"], "--head best must be 'mean' or a head index"),
    ("layer-empty", ["--layer", ""], '--layer "" must not be empty'),
    ("module-too-long", ["--module", "m" * 500], "--module mmmm"),
    ("term-unknown", ["--term", "colour"], "invalid choice"),
    ("set-junk", ["--set", "junk"], "expected KEY=VALUE"),
    ("set-deep", ["--set", f"a={DEEP}"], "--set a is nested too deeply"),
    ("set-nan", ["--set", "a=NaN"], "--set a=nan must be a finite number"),
    ("set-object", ["--set", 'a={"b": 1}'], "--set a={\"b\": 1} must be a number"),
    ("set-bad-key", ["--set", "no key=1"], "--set no key=1 must use names"),
    ("unknown-flag", ["--colour", "red"], "unrecognized arguments: --colour red"),
    ("max-pixels-zero", ["--max-pixels", "0"], "--max-pixels 0 is out of range"),
    ("no-view", None, "give --view"),
]

# (name, extra options for `trace --model detr-r50 --weights none`, what the sentence must say)
MODEL_OPTIONS = [
    ("resize-negative", ["--resize", "-1"], "--resize -1 is out of range"),
    ("resize-huge", ["--resize", "100000"], "--resize 100000 is out of range"),
    ("resize-tiny", ["--resize", "3"], "--resize 3 is out of range"),
    ("clip-length-zero", ["--clip-length", "0"], "--clip-length 0 is out of range (1..256)"),
    ("clip-length-huge", ["--clip-length", str(10**6)], "--clip-length 1000000 is out of range"),
    ("stride-zero", ["--stride", "0"], "--stride 0 is out of range (1..64)"),
    ("stride-huge", ["--stride", "1000"], "--stride 1000 is out of range"),
    ("heads-zero", ["--heads", "0"], "--heads 0 is out of range (1..64)"),
    ("heads-negative", ["--heads", "-3"], "--heads -3 is out of range"),
    ("heads-huge", ["--heads", "1000"], "--heads 1000 is out of range"),
    ("threshold-two", ["--threshold", "2"], "--threshold 2 is out of range (0..1)"),
    ("threshold-negative", ["--threshold", "-0.1"], "--threshold -0.1 is out of range"),
    ("threshold-nan", ["--threshold", "nan"], "--threshold nan must be a finite number"),
    ("frame-negative", ["--frame", "-1"], "--frame -1 is out of range"),
    ("seed-negative", ["--seed", "-1"], "--seed -1 is out of range"),
    ("seed-huge", ["--seed", str(10**30)], "is out of range"),
    ("device-unknown", ["--device", "gpu"], "--device gpu must be auto, cpu, mps, cuda or cuda:N"),
    ("device-index-huge", ["--device", "cuda:999"], "--device cuda:999 must be"),
    ("precision-unknown", ["--precision", "fp8"], "invalid choice"),
    ("config-junk", ["--config", "junk"], "expected KEY=VALUE"),
    ("config-deep", ["--config", f"a={DEEP}"], "--config a is nested too deeply"),
    ("config-nested", ["--config", "a=[[1]]"], "--config a=[[1]] must be a number"),
    ("config-long", ["--config", "a=" + "x" * 1000], "longer than 256 characters"),
    ("config-long-list", ["--config", "a=" + str(list(range(40)))], "flat list of at most 16"),
    ("config-inf", ["--config", "a=Infinity"], "--config a=inf must be a finite number"),
    ("config-heads", ["--config", "nheads=0"], "--config nheads=0 is out of range"),
    ("config-dilation", ["--config", "dilation=5"], "--config dilation=5 must be true or false"),
    ("max-pixels-negative", ["--max-pixels", "-1"], "--max-pixels -1 is out of range"),
    ("missing-input", None, "the following arguments are required: --input"),
]


def make(folder: Path) -> list[Case]:
    image = scene(folder)
    tr = trace(folder, image)
    out = folder / "figures"
    out.mkdir()
    cases = []
    for name, extra, says in VIEW_OPTIONS:
        figure = str(out / f"{name}.{'pdf' if name.startswith('pdf') else 'png'}")
        if extra is None:
            argv = ["export", "--trace", str(tr), "--out", figure]
        else:
            argv = ["export", "--trace", str(tr), "--view", "detections", "--out", figure, *extra]
        cases.append(Case(f"export-{name}", argv, message=says, unchanged=[str(tr)]))
    for name, extra, says in MODEL_OPTIONS:
        argv = ["trace", "--model", "detr-r50", "--weights", "none", "--out", str(folder / f"{name}.npz")]
        argv += ["--input", str(image), *extra] if extra is not None else []
        cases.append(Case(f"trace-{name}", argv, message=says, unchanged=[str(image)]))
    cases += [
        Case("eval-n-zero", ["eval", "--model", "demo-lrnet", "--n", "0"], message="--n 0 is out of range"),
        Case("eval-seed-negative", ["eval", "--model", "demo-lrnet", "--seed", "-1"], message="--seed -1"),
        Case("models-unknown-flag", ["models", "--csv"], message="unrecognized arguments: --csv"),
    ]
    # the edges of every range work
    cases += [
        Case("valid-version", ["--version"], expect=0),
        Case("valid-low-edges", ["export", "--trace", str(tr), "--view", "detections", "--out", str(out / "lo.png"),
                                 "--dpi", "30", "--width", "0.5", "--height", "0.5", "--top-k", "1", "--object", "0",
                                 "--head", "0", "--frame", "0", "--cmap", "gray"], expect=0, unchanged=[str(tr)]),
        Case("valid-high-edges", ["export", "--trace", str(tr), "--view", "decoder-attention",
                                  "--out", str(out / "hi.png"), "--dpi", "1200", "--width", "2", "--height", "2",
                                  "--top-k", "1000", "--head", "3", "--layer", "-1", "--cmap", "viridis",
                                  "--no-colorbar", "--no-shared-range", "--max-pixels", "100000000"], expect=0),
        Case("valid-points", ["export", "--trace", str(tr), "--view", "encoder-attention", "--out",
                              str(out / "enc.svg"), "--point", "0,0", "--point=95.5,71.5", "--head", "mean"],
             expect=0),
        Case("valid-model-run-edges", ["trace", *SMALL[:-4], "--resize", "64", "--device", "cpu", "--threshold", "1",
                                       "--seed", "4294967295", "--config", "num_classes=5",
                                       "--input", str(image), "--out", str(folder / "edge.npz")],
             expect=0, unchanged=[str(image)]),
    ]
    return cases
