"""Where a rank sits in the 3D layout: its pipeline stage, tensor-parallel rank and
data-parallel replica, and the process groups that connect them.

Ranks are ordered (pipe, data, tensor), tensor innermost, so the T ranks of one
tensor-parallel group are adjacent: on a cluster that places consecutive ranks on one
host, tensor parallelism (an all-reduce per layer) stays on the fast intra-node links,
and only the pipeline's point-to-point sends and the data-parallel gradient all-reduce
cross hosts (Megatron-LM's placement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.training.config import TrainingConfig


@dataclass(frozen=True)
class Layout:
    pipeline: int
    tensor: int
    data: int

    @classmethod
    def of(cls, cfg: TrainingConfig, world: int) -> Layout:
        p, t = cfg.parallel.pipeline, cfg.parallel.tensor
        if world % (p * t):  # checks.py refuses this before any worker starts
            raise ValueError(f"{world} rank(s) do not divide into pipeline {p} x tensor {t}")
        return cls(p, t, world // (p * t))

    @property
    def model_parallel(self) -> bool:
        """True when the model is split (pipeline or tensor): the 3D engine path."""
        return self.pipeline * self.tensor > 1

    @property
    def world(self) -> int:
        return self.pipeline * self.tensor * self.data

    def coords(self, rank: int) -> Coords:
        stage, rest = divmod(rank, self.data * self.tensor)
        replica, tp_rank = divmod(rest, self.tensor)
        return Coords(stage, tp_rank, replica)

    def describe(self) -> dict[str, int]:
        return {"pipeline": self.pipeline, "tensor": self.tensor, "data": self.data}


@dataclass(frozen=True)
class Coords:
    stage: int
    tensor_rank: int
    replica: int  # the data-parallel rank: which slice of each global batch this rank's replica takes


class Grid:
    """The process groups of `layout` that the tensor shards need before DeepSpeed's
    PipelineModule exists (it builds its own grid, over the same ranks, which its engine
    then uses). Made once per process (`grid_for`): groups are not freed, and a roll-back
    builds a new engine."""

    def __init__(self, layout: Layout, rank: int):
        from deepspeed.runtime.pipe.topology import PipelineParallelGrid, PipeModelDataParallelTopology

        self.layout, self.coords = layout, layout.coords(rank)
        self.topology = PipeModelDataParallelTopology(num_pp=layout.pipeline, num_mp=layout.tensor, num_dp=layout.data)
        self.mpu: Any = PipelineParallelGrid(topology=self.topology)
        # Our coordinates and DeepSpeed's must name the same ranks, or shards would be cut
        # for one group and reduced over another.
        ds = self.topology.get_coord(rank)
        assert (ds.pipe, ds.model, ds.data) == (self.coords.stage, self.coords.tensor_rank, self.coords.replica), ds

    @property
    def tensor_group(self):
        return self.mpu.get_slice_parallel_group()


_GRIDS: dict[tuple[Layout, int], Grid] = {}


def grid_for(layout: Layout, rank: int) -> Grid:
    if (layout, rank) not in _GRIDS:
        _GRIDS[(layout, rank)] = Grid(layout, rank)
    return _GRIDS[(layout, rank)]
