"""Hugging Face model folders: ``config.json`` beside ``model.safetensors`` or ``pytorch_model.bin``.

A folder saved by ``save_pretrained`` (or downloaded from the Hub) holds the architecture in ``config.json``
and the weights in one file beside it.  relviz reads the JSON itself — transformers is never imported — and
hands the parsed object to the model family, which knows what its fields mean.  The folder may be given
itself, or as the weights file inside it: the config is then read from beside that file.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from relviz.core import limits
from relviz.core.errors import CheckpointError
from relviz.core.files import shown, stat_path

CONFIG_NAME = "config.json"
#: the weights files ``save_pretrained`` writes, in the order they are looked for
WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _exists(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def is_model_folder(path: str | Path) -> bool:
    """True for a directory that holds ``config.json`` and a weights file (or a shard index) beside it."""
    path = Path(path)
    try:
        if not stat.S_ISDIR(stat_path(path).st_mode):
            return False
    except Exception:  # noqa: BLE001 — a path that cannot be looked at is not a model folder
        return False
    return _exists(path / CONFIG_NAME) and any(_exists(path / n) for n in (*WEIGHTS_NAMES, *SHARD_INDEXES))


def weights_in(folder: Path) -> Path:
    """The weights file of a model folder; one sentence saying what is missing otherwise."""
    for name in WEIGHTS_NAMES:
        if _exists(folder / name):
            if not _exists(folder / CONFIG_NAME):
                raise CheckpointError(f"folder {shown(folder)} holds {name} but no {CONFIG_NAME}; relviz reads a "
                                      f"Hugging Face model's architecture from its {CONFIG_NAME}")
            return folder / name
    for name in SHARD_INDEXES:
        if _exists(folder / name):
            raise CheckpointError(f"folder {shown(folder)} holds its weights in shards ({name}); relviz reads one "
                                  f"weights file: save the model with a larger max_shard_size")
    raise CheckpointError(f"folder {shown(folder)} is not a model folder: it holds no {' or '.join(WEIGHTS_NAMES)} "
                          f"beside a {CONFIG_NAME}")


def read_config(path: Path) -> dict[str, Any]:
    """A ``config.json`` as a dict, once its size, syntax and values are sane (no NaN or infinity)."""
    what = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    size = path.stat().st_size
    if size > limits.MAX_MODEL_CONFIG_BYTES:
        raise CheckpointError(f"{what} is {size:,} bytes; relviz reads model configs of at most "
                              f"{limits.MAX_MODEL_CONFIG_BYTES:,}")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number relviz accepts")

    try:
        config = json.loads(path.read_bytes(), parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{what} is not readable JSON ({reason})") from None
    except OSError as exc:
        raise CheckpointError(f"{what} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{what} is not a JSON object; a Hugging Face config.json is one")
    return config


def config_beside(weights: Path) -> dict[str, Any] | None:
    """The ``config.json`` next to a weights file, when there is one that describes a Hugging Face model.

    A config.json beside a file that ``save_pretrained`` names (``model.safetensors``, ``pytorch_model.bin``)
    must be readable; beside any other checkpoint it is used only when it names a ``model_type``.
    """
    path = weights.parent / CONFIG_NAME
    if not _exists(path):
        return None
    if weights.name in WEIGHTS_NAMES:
        return read_config(path)
    try:
        config = read_config(path)
    except CheckpointError:
        return None
    return config if isinstance(config.get("model_type"), str) else None
