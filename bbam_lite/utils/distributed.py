"""Several processes on one job (``torchrun``): who am I, and a barrier.

``torchrun --nproc-per-node N -m bbam_lite COMMAND ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment (and ``MASTER_ADDR``/``MASTER_PORT``
for the rendezvous; several nodes work the same way). Labelling processes only wait for each
other, so their group is gloo (CPU sockets), also on GPU machines; data-parallel detector training
exchanges gradients (gloo on CPUs, NCCL on GPUs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

#: How long a barrier waits for the slowest rank (a long pseudo-label shard can take hours).
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for when alone)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def device(self, name: str) -> str:
        """``cuda`` becomes ``cuda:LOCAL_RANK`` when several processes share a node."""
        return f"cuda:{self.local_rank}" if name == "cuda" and self.world_size > 1 else name


def env_ranks() -> Ranks:
    """The ranks torchrun put in the environment (one process when they are absent)."""

    def read(name: str, default: int) -> int:
        value = os.environ.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"environment variable {name}={value!r} is not an integer") from None

    ranks = Ranks(read("RANK", 0), read("WORLD_SIZE", 1), read("LOCAL_RANK", 0))
    if ranks.world_size < 1 or not 0 <= ranks.rank < ranks.world_size:
        raise ValueError(f"RANK={ranks.rank} does not fit WORLD_SIZE={ranks.world_size}")
    return ranks


@contextmanager
def process_group(backend: str = "gloo") -> Iterator[Ranks]:
    """Join the torchrun process group for the duration, when there is more than one rank.

    gloo is enough for barriers; data-parallel training on GPUs passes ``cpu:gloo,cuda:nccl``.
    """
    ranks = env_ranks()
    if ranks.world_size == 1:
        yield ranks
        return
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    try:
        yield ranks
    finally:
        if created:
            dist.destroy_process_group()
