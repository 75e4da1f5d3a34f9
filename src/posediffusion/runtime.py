"""Process-level setup: the device of this process, the autocast dtype, and (under ``torchrun``) the process
group. Shared by training, evaluation and lifting."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from posediffusion.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Process-level facts: device, autocast dtype, distributed rank and world size."""

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int = 0
    world_size: int = 1
    owns_process_group: bool = False
    """True when :func:`setup_runtime` created the process group (then :func:`train` destroys it)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N``/``cuda:0,1`` -> the device of this (local) process.

    ``ValueError`` naming ``--device`` for an unknown spelling, CUDA requested where it is not available, or
    a GPU index this machine does not have.
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    kind, _, index_text = str(spec).partition(":")
    try:
        ids = [int(i) for i in index_text.split(",") if i.strip()] if index_text else []
    except ValueError:
        ids = [-1]
    if kind != "cuda" or (index_text and not ids) or any(i < 0 for i in ids):
        raise ValueError(f"--device {spec!r}: must be auto, cpu, cuda, cuda:N or cuda:N,M,...")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {spec!r}: CUDA is not available on this machine (use --device cpu)")
    count = torch.cuda.device_count()
    ids = ids or list(range(count))
    if max(ids) >= count:
        raise ValueError(f"--device {spec!r}: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}")
    if len(ids) > 1 and "LOCAL_RANK" not in os.environ:
        log.warning("several GPUs %s given without torchrun: using cuda:%d only "
                    "(launch with torchrun --nproc_per_node=%d to use all)", ids, ids[0], len(ids))
    return torch.device("cuda", ids[local_rank % len(ids)])


def process_group_backend(device: torch.device, local_world_size: int, gpu_count: int) -> str:
    """The ``torch.distributed`` backend: NCCL when each local process has its own GPU, else gloo.

    NCCL refuses two ranks on one GPU, so ``torchrun --nproc_per_node=N`` with more processes than GPUs
    (small-preset runs sharing one GPU, where one process is launch-bound) uses gloo, which all-reduces CUDA
    tensors too; CPU processes always use gloo.
    """
    if device.type != "cuda":
        return "gloo"
    return "nccl" if local_world_size <= gpu_count else "gloo"


def setup_runtime(config: TrainConfig) -> Runtime:
    """Device, AMP and (under ``torchrun``) the process group (:func:`process_group_backend`)."""
    world_size, local_rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    amp = config.amp if config.amp != "auto" else ("bf16" if device.type == "cuda" else "none")
    if amp != "none" and device.type != "cuda":
        log.warning("%s autocast on CPU: slower than fp32 for small models (docs/model.md)", amp)
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if world_size > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
            gpus = torch.cuda.device_count()
            backend = process_group_backend(device, local_world, gpus)
            if device.type == "cuda" and backend == "gloo":
                log.info("%d processes on %d GPU(s): gloo process group (NCCL needs one GPU per process)",
                         local_world, gpus)
            dist.init_process_group(backend)
        return Runtime(device, amp_dtype, dist.get_rank(), dist.get_world_size(), owns)
    return Runtime(device, amp_dtype)
