"""Data-parallel scoring: the processes that `accelerate launch` or `torchrun` starts share the rows.

Every process reads the same input; process `i` of `n` scores items `i, i+n, i+2n, ...` of each chunk
(interleaved, so long and short rows spread evenly), and the main process gathers the results back
into input order and alone writes the output. Run as one process, everything here is a no-op.

Example:
    >>> procs = Processes()      # under `accelerate launch --num_processes 2`: procs.count == 2
    >>> mine = procs.share(["a", "b", "c"])  # process 0 of 2 would get ["a", "c"]
    >>> procs.gather([item.upper() for item in mine])   # input order, on every process
    ['A', 'B', 'C']
"""

from __future__ import annotations

import os
from typing import Any

from rewardkit.errors import RewardkitError


class Processes:
    """This process's place among the scoring processes (one process unless launched with several)."""

    def __init__(self):
        self.state = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            self.state = PartialState(cpu=not torch.cuda.is_available())  # gloo on CPU, nccl on GPUs

    @property
    def count(self) -> int:
        return self.state.num_processes if self.state else 1

    @property
    def index(self) -> int:
        return self.state.process_index if self.state else 0

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def device(self) -> str | None:
        """This process's device (e.g. `cuda:1`), or None when run alone (the loaders then choose)."""
        return str(self.state.device) if self.state else None

    def share(self, items: list) -> list:
        """This process's share of `items`."""
        return items[self.index :: self.count]

    def gather(self, mine: list) -> list:
        """Every process's share put back in the order of the list `share` split (on every process)."""
        if not self.state:
            return mine
        from accelerate.utils import gather_object

        parts = gather_object([mine])  # one list per process, in process order
        merged: list = [None] * sum(len(part) for part in parts)
        for index, part in enumerate(parts):
            merged[index :: self.count] = part
        return merged

    def from_main(self, compute) -> Any:
        """`compute()` run on the main process alone, its result (or its error) given to every process.

        An error raised on the main process is raised on all of them, so none waits forever for it.
        """
        value, error = None, None
        if self.is_main:
            try:
                value = compute()
            except RewardkitError as e:
                error = e
        if self.state:
            from accelerate.utils import broadcast_object_list

            value, message = broadcast_object_list([value, None if error is None else str(error)])
            error = error or (RewardkitError(message) if message is not None else None)
        if error is not None:
            raise error
        return value
