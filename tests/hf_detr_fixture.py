"""Small random Hugging Face DETR folders, written without transformers (and without relviz).

Each case in ``tests/data/hf_detr/<case>/`` holds the ``config.json`` transformers wrote, ``keys.json`` — every
tensor's name in the Hub files, in transformers 5's memory (when the case was made with transformers 5) and its
shape — and ``reference.npz``, transformers' own outputs on these weights
(``scripts/make_hf_detr_reference.py``).  :func:`write_folder` fills every tensor from a seed derived from its
Hub name, so the weights need not be committed: the tests and the reference script write the same bytes.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file

DATA = Path(__file__).resolve().parent / "data" / "hf_detr"


def cases() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if (p / "keys.json").is_file())


def tensor_for(name: str, shape: list[int]) -> torch.Tensor:
    """A deterministic tensor of sane scale for the parameter ``name`` (seeded by the name's CRC-32)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    t = torch.randn(shape, generator=g, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 1.0 + 0.1 * t.abs()
    if leaf == "running_mean":
        return 0.1 * t
    if len(shape) == 1:  # biases and norm scales/offsets
        is_scale = leaf == "weight"
        return 1.0 + 0.1 * t if is_scale else 0.05 * t
    if "embeddings" in name or "position" in name:
        return t
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    return t / fan_in**0.5


def state_dict(case: str, names: str = "hub") -> dict[str, torch.Tensor]:
    """The case's weights under its Hub names (``hub``) or transformers 5's in-memory names (``memory``)."""
    rows = json.loads((DATA / case / "keys.json").read_text())
    column = {"hub": 0, "memory": 1}[names]
    return {row[column]: tensor_for(row[0], row[2]) for row in rows if row[column]}


def write_folder(case: str, folder: Path, names: str = "hub", weights: str = "model.safetensors") -> Path:
    """A Hugging Face model folder of ``case``: its config.json and the weights as ``weights``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / case / "config.json", folder / "config.json")
    state = state_dict(case, names)
    if weights.endswith(".safetensors"):
        save_file(state, str(folder / weights), metadata={"format": "pt"})
    else:
        torch.save(state, folder / weights)
    return folder
