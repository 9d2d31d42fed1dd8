"""Training on N processes: ``torchrun --nproc_per_node N embdrop train ...`` runs DDP over gloo on the CPU.

The one place that asks torch.distributed who and how many we are; outside torchrun every helper is a no-op
(world 1, rank 0).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def start() -> None:
    """Under torchrun (WORLD_SIZE > 1 in the environment), start the gloo process group once."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")


def world_rank() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless a process group is up."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def barrier() -> None:
    if world_rank()[0] > 1:
        import torch.distributed as dist

        dist.barrier()


def same_on_every_rank(run: Path) -> Path:
    """Rank 0's run directory (a default name holds the time, which the ranks may see differently)."""
    if world_rank()[0] == 1:
        return run
    import torch.distributed as dist

    box = [str(run)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def mean_over_ranks(*values: float) -> list[float]:
    """The mean of each value over the ranks (the values themselves on one process)."""
    world = world_rank()[0]
    if world == 1:
        return list(values)
    import torch.distributed as dist

    totals = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(totals)
    return (totals / world).tolist()
