"""Several processes on one machine or many: ``torch.distributed`` as ``torchrun`` starts it.

``torchrun --nproc_per_node G [--nnodes N --node_rank R --master_addr HOST …] -m relviz batch …`` starts one
process per GPU (or per CPU share) with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment —
the launcher DETR and mmaction2 use for distributed evaluation, and what SLURM clusters already run.  Each
rank takes every ``WORLD_SIZE``-th item (:func:`shard`), writes its own manifest part and statistics part,
and waits at a barrier; rank 0 merges.  The process group only carries barriers and one small reduction,
so it uses the gloo backend whatever the device (NCCL would need a GPU per rank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from relviz.core.errors import BadInputError

T = TypeVar("T")
#: how long a rank waits at a barrier for the slowest one (a shard of a long run can take hours)
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInputError(f"the environment variable {name}={value!r} is not a whole number (torchrun sets it)") \
            from None


def from_environment() -> Ranks:
    """This process's rank from ``torchrun``'s environment (one process, rank 0, without it)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise BadInputError(f"RANK={rank} and WORLD_SIZE={world} do not fit together (0 ≤ RANK < WORLD_SIZE)")
    return Ranks(rank, world, local)


def start(ranks: Ranks) -> None:
    """Join the process group (``torchrun``'s rendezvous: MASTER_ADDR, MASTER_PORT) when there are several."""
    if not ranks.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world, timeout=BARRIER_TIMEOUT)


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def stop(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def shard(items: list[T], ranks: Ranks) -> list[T]:
    """The items of this rank: every ``world``-th, from its rank (balanced within one item)."""
    return items[ranks.rank :: ranks.world]


def device_for(device: str, ranks: Ranks) -> str:
    """``auto`` or ``cuda`` on a machine with several GPUs: the GPU of this rank's ``LOCAL_RANK``."""
    if not ranks.distributed or device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{ranks.local_rank % torch.cuda.device_count()}"
    return device
