"""Device and precision choice: ``auto`` picks cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from relviz.core.errors import BadInputError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def available_devices() -> list[str]:
    """The devices present on this machine, best first: ``cuda:N``…, ``mps``, ``cpu``."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None → the best device present; ``cpu``, ``mps``, ``cuda``, ``cuda:N`` checked to exist."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device(available_devices()[0])
    shown = repr(spec if len(spec) <= 40 else spec[:39] + "…")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise BadInputError(f"unknown device {shown}; use auto, cpu, mps, cuda or cuda:N") from None
    present = available_devices()
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"device {shown} asked for, but this machine has no CUDA GPU (devices: "
                                f"{', '.join(present)})")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise BadInputError(f"device {shown} does not exist; this machine has {', '.join(present)}")
        return torch.device("cuda", index)
    if device.type == "mps" and "mps" not in present:
        raise BadInputError(f"device 'mps' asked for, but it is not available (devices: {', '.join(present)})")
    if device.type == "cpu":
        return torch.device("cpu")  # one CPU device: 'cpu:N' is the same one
    if device.type not in ("cuda", "mps"):
        raise BadInputError(f"unsupported device {shown}; use auto, cpu, mps, cuda or cuda:N")
    return device


def supported_precisions(device: torch.device) -> list[str]:
    """Precisions that run well on ``device``: fp32 always; bf16 on CPU and recent GPUs; fp16 on GPUs.

    This is what the device offers; a model family may run on fewer (``Family.supported_precisions``: the
    detectors' torchvision NMS and RoIAlign have no bf16 or fp16 kernels on the CPU).
    """
    if device.type == "cuda":
        names = ["fp32", "fp16"]
        if torch.cuda.is_bf16_supported():
            names.append("bf16")
        return names
    if device.type == "mps":
        return ["fp32", "fp16"]
    return ["fp32", "bf16"]


def resolve_precision(name: str | None, device: torch.device) -> torch.dtype:
    name = (name or "fp32").lower()
    if name not in PRECISIONS:
        raise BadInputError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    if name not in supported_precisions(device):
        raise BadInputError(
            f"precision {name} is not supported on {device}; use one of {', '.join(supported_precisions(device))}"
        )
    return PRECISIONS[name]
