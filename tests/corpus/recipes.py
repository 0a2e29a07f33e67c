"""Recipe files for ``relviz export --recipe``: wrong types, lists and objects for scalars, deep nesting,
missing and unknown fields, huge and non-finite numbers, a wrong relviz version, files that are not JSON
or not text or too large, and outputs that would overwrite the recipe's own inputs; a few valid ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

from corpus import Case
from corpus._inputs import SMALL_SOURCE, recipe, scene, trace, write_json


def _deep(levels: int):
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def _field_cases(folder: Path, tr: Path, out: Path) -> list[Case]:
    """One recipe per broken field: (name, change to a valid recipe, what the sentence must say)."""

    def opts(**o):
        return {"options": {"object": 0, **o}}

    broken = [
        ("dpi-string", {"dpi": "300"}, "dpi must be an integer"),
        ("dpi-list", {"dpi": [300]}, "dpi must be an integer"),
        ("dpi-object", {"dpi": {"value": 300}}, "dpi must be an integer"),
        ("dpi-bool", {"dpi": True}, "dpi must be an integer"),
        ("dpi-float", {"dpi": 300.5}, "dpi must be an integer"),
        ("dpi-huge", {"dpi": 10**40}, "dpi is out of range"),
        ("dpi-zero", {"dpi": 0}, "dpi is out of range"),
        ("width-string", opts(width="wide"), "options.width must be a number"),
        ("width-list", opts(width=[3, 4]), "options.width must be a number"),
        ("width-huge", opts(width=1e300), "options.width is out of range"),
        ("png-too-many-pixels", {**opts(width=40, height=40), "dpi": 1200}, "over the limit"),
        ("point-short", opts(point=[1]), "options.point must be two numbers"),
        ("point-strings", opts(point=["1", "2"]), "options.point must be two numbers"),
        ("point-far", opts(point=[1e308, 5]), "options.point is outside any image"),
        ("points-too-many", opts(points=[[1, 1]] * 100), "options.points has too many items"),
        ("head-out-of-range", opts(head=999), "options.head is out of range"),
        ("head-object", opts(head={"i": 1}), "options.head must be a string"),
        ("object-negative", opts(object=-1), "options.object is out of range"),
        ("object-float", opts(object=0.5), "options.object must be an integer"),
        ("top-k-zero", opts(top_k=0), "options.top_k is out of range"),
        ("cmap-unknown", opts(cmap="nope"), "options.cmap is not a matplotlib colormap"),
        ("term-unknown", opts(term="colour"), "options.term must be"),
        ("colorbar-string", opts(colorbar="yes"), "options.colorbar must be true or false"),
        ("extra-nested", opts(extra={"k": _deep(100)}), "nested too deeply"),
        ("extra-object-value", opts(extra={"k": {"a": 1}}), "options.extra.k must be"),
        ("model-info-nested", {"model": {"config": _deep(100)}}, "nested too deeply"),
        ("options-list", {"options": [1, 2]}, "options must be an object"),
        ("options-unknown-field", opts(colour="red"), "options.colour is not a field relviz knows"),
        ("unknown-field", {"colour": "red"}, "colour is not a field relviz knows"),
        ("version-wrong", {"relviz": "9.9.9"}, "relviz says '9.9.9'"),
        ("version-number", {"relviz": 1}, "relviz must be a string"),
        ("version-garbage", {"relviz": "latest"}, "relviz must be the relviz version"),
        ("trace-nul", {"trace": "a\x00b.npz"}, "trace contains a NUL character"),
        ("trace-list", {"trace": [str(tr)]}, "trace must be a string"),
        ("sha-garbage", {"trace_sha256": "xyz"}, "trace_sha256 is not in the expected form"),
        ("trace-and-source", {"source": {**SMALL_SOURCE, "input": str(folder / "scene.png")}}, "both a trace"),
        ("source-resize", {"trace": None, "source": {**SMALL_SOURCE, "resize": -5}}, "source.resize is out of range"),
        ("source-threshold", {"trace": None, "source": {**SMALL_SOURCE, "threshold": 2}},
         "source.threshold is out of range"),
        ("source-heads", {"trace": None, "source": {**SMALL_SOURCE, "overrides": {"nheads": 1000}}},
         "source.overrides.nheads is out of range"),
        ("source-clip", {"trace": None, "source": {**SMALL_SOURCE, "clip_length": 10**6}},
         "source.clip_length is out of range"),
        ("source-device", {"trace": None, "source": {**SMALL_SOURCE, "device": "gpu"}}, "source.device must be"),
        ("source-seed", {"trace": None, "source": {**SMALL_SOURCE, "seed": -1}}, "source.seed is out of range"),
        ("source-input-nul", {"trace": None, "source": {**SMALL_SOURCE, "input": "x\x00.png"}}, "NUL"),
        ("source-overrides-list", {"trace": None, "source": {**SMALL_SOURCE, "overrides": [1]}},
         "source.overrides must be an object"),
    ]
    cases = []
    for name, change, says in broken:
        data = recipe(tr, out, **change)
        data = {k: v for k, v in data.items() if v is not None}
        cases.append(Case(f"field-{name}", ["export", "--recipe", str(write_json(folder / f"{name}.json", data))],
                          message=says))
    missing = [("view", "view is missing"), ("relviz", "relviz is missing"), ("trace", "neither a trace nor a source")]
    for field, says in missing:
        data = recipe(tr, out)
        data.pop(field)
        path = write_json(folder / f"missing-{field}.json", data)
        cases.append(Case(f"missing-{field}", ["export", "--recipe", str(path)], message=says))
    return cases


def _file_cases(folder: Path, out: Path) -> list[Case]:
    """Files that are not recipes at all."""
    contents = {
        "empty": (b"", "is empty"),
        "whitespace": (b" \n\t ", "is empty"),
        "binary": (bytes(range(256)) * 8, "not UTF-8"),
        "png-bytes": (b"\x89PNG\r\n\x1a\n" + os.urandom(64), "not UTF-8"),
        "not-json": (b"view = detections\n", "is not valid JSON"),
        "truncated": (b'{"relviz": "0.1.0", "view": ', "is not valid JSON"),
        "list": (b"[1, 2, 3]", "must hold a JSON object"),
        "string": (b'"a recipe"', "must hold a JSON object"),
        "number": (b"42", "must hold a JSON object"),
        "nan": (b'{"relviz": "0.1.0", "dpi": NaN}', "holds NaN"),
        "infinity": (b'{"relviz": "0.1.0", "options": {"width": -Infinity}}', "holds -Infinity"),
        "deep-array": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        "deep-object": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
        "long-integer": (b'{"dpi": ' + b"9" * 5000 + b"}", "is not valid JSON"),
        "huge": (b"{" + b" " * 1_500_000 + b"}", "larger than 1,000,000 bytes"),
    }
    cases = []
    for name, (content, says) in contents.items():
        path = folder / f"file-{name}.json"
        path.write_bytes(content)
        cases.append(Case(f"file-{name}", ["export", "--recipe", str(path), "--out", str(out)], message=says,
                          unchanged=[str(path)]))
    (folder / "a-folder.json").mkdir()
    cases.append(Case("file-folder", ["export", "--recipe", str(folder / "a-folder.json")], message="is a folder"))
    cases.append(Case("file-missing", ["export", "--recipe", str(folder / "nowhere.json")],
                      message="does not exist"))
    cases.append(Case("file-device", ["export", "--recipe", "/dev/zero"], message="not a regular file"))
    return cases


def _output_cases(folder: Path, tr: Path, image: Path) -> list[Case]:
    """Recipes whose output would overwrite what they read."""
    cases = []
    as_png = folder / "trace-named.png"  # a trace with a figure's name, drawn onto itself
    as_png.write_bytes(tr.read_bytes())
    path = write_json(folder / "onto-trace.json", recipe(as_png, as_png))
    cases.append(Case("output-is-its-trace", ["export", "--recipe", str(path)], message="is the trace it draws",
                      unchanged=[str(as_png), str(path)]))
    own = folder / "own.recipe.json"  # drawn to another figure whose recipe would replace it
    write_json(own, recipe(tr, folder / "own.png"))
    cases.append(Case("output-recipe-is-the-recipe", ["export", "--recipe", str(own), "--out", str(folder / "own.svg")],
                      message="is the recipe being replayed", unchanged=[str(own)]))
    cases.append(Case("replayed-in-place", ["export", "--recipe", str(own)], expect=0))  # regenerates own.png
    onto_image = write_json(folder / "onto-image.json",
                            recipe(tr, image, trace=None, source={**SMALL_SOURCE, "input": str(image)}))
    cases.append(Case("output-is-the-input-image", ["export", "--recipe", str(onto_image)], message="is the input",
                      unchanged=[str(image)]))
    return cases


def _valid_cases(folder: Path, tr: Path, image: Path) -> list[Case]:
    out = folder / "valid"
    out.mkdir()
    minimal = write_json(folder / "valid-minimal.json", {"relviz": recipe(tr, out)["relviz"], "view": "detections",
                                                         "trace": str(tr), "output": str(out / "minimal.png")})
    relative = write_json(folder / "valid-relative.json", recipe(Path(tr.name), Path("valid/relative.svg")))
    full = recipe(tr, out / "full.pdf", options={"object": 1, "head": 2, "layer": 0, "cmap": "viridis", "width": 3.5,
                                                 "height": 2.5, "top_k": 5, "colorbar": False})
    bom = folder / "valid-bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(recipe(tr, out / "bom.png")).encode())
    model = write_json(folder / "valid-model-run.json",
                       recipe(tr, out / "model.png", trace=None, source={**SMALL_SOURCE, "input": str(image)}))
    return [
        Case("valid-minimal", ["export", "--recipe", str(minimal)], expect=0, unchanged=[str(tr), str(minimal)]),
        Case("valid-relative-paths", ["export", "--recipe", str(relative)], expect=0, unchanged=[str(tr)]),
        Case("valid-full-decoder", ["export", "--recipe",
                                    str(write_json(folder / "valid-full.json",
                                                   {**full, "view": "decoder-attention"}))], expect=0),
        Case("valid-bom", ["export", "--recipe", str(bom)], expect=0),
        Case("valid-out-override", ["export", "--recipe", str(minimal), "--out", str(out / "other.png")], expect=0),
        Case("valid-model-run", ["export", "--recipe", str(model)], expect=0, unchanged=[str(image)]),
    ]


def make(folder: Path) -> list[Case]:
    image = scene(folder)
    tr = trace(folder, image)
    out = folder / "fig.png"
    return [*_field_cases(folder, tr, out), *_file_cases(folder, out), *_output_cases(folder, tr, image),
            *_valid_cases(folder, tr, image)]
