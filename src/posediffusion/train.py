"""Training: configs (``TrainConfig`` with a ``DataConfig``), data splits, and the training loop.

One loop serves a laptop CPU and a GPU cluster: AdamW with per-epoch exponential LR decay, gradient
clipping, optional EMA, optional bf16/fp16 autocast on CUDA, and DistributedDataParallel when launched by
``torchrun`` (NCCL on CUDA, gloo on CPU; rank 0 logs and writes checkpoints).

Determinism and exact resume: the data order of epoch ``e`` is a function of ``(seed, e)``
(``DistributedSampler``), flip augmentation a function of ``(seed, e, index)`` (``WindowDataset``), and
before every optimisation step the RNGs are reseeded from ``(seed, rank, global_step)``. A checkpoint
therefore only needs the progress counters, the weights and the optimizer/scheduler/scaler state to continue
exactly where an uninterrupted run would be, also from the middle of an epoch (``save_every_steps``).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from posediffusion.io_utils import write_text_atomic

log = logging.getLogger(__name__)

#: Published optimiser defaults (D3DP / the seed): lr, per-epoch decay.
PUBLISHED_LR = {"h36m": (6e-5, 0.993), "3dhp": (7e-5, 0.995)}
#: Default subjects when a Human3.6M-layout dataset does not name them (the seed's -str / -ste).
H36M_TRAIN_SUBJECTS = ["S1", "S5", "S6", "S7", "S8"]
H36M_TEST_SUBJECTS = ["S9", "S11"]
#: Frames per batch of the paper (4 windows of 243 frames); the default batch size keeps it.
PAPER_FRAMES_PER_BATCH = 4 * 243
AMP_MODES = ("auto", "none", "bf16", "fp16")


@dataclass
class DataConfig:
    """Which data to train and evaluate on."""

    dataset: str = "h36m"
    """``h36m``, ``3dhp``, or the name of a dataset written by ``posediffusion prepare mocap``."""
    data_dir: str = "data"
    """Folder with the dataset files (``data_3d_<dataset>.npz`` ... or ``data_*_3dhp.npz``)."""
    keypoints: str = "gt"
    """2D source for Human3.6M-layout datasets: reads ``data_2d_<dataset>_<keypoints>.npz``."""
    subjects_train: list[str] | None = None
    """Training subjects; ``None``: S1,S5,S6,S7,S8 (Human3.6M layout) or all (3DHP)."""
    subjects_test: list[str] | None = None
    """Test subjects; ``None``: S9,S11 (Human3.6M layout) or TS1-TS6 (3DHP)."""
    actions: list[str] | None = None
    """Restrict to these actions (takes or merged names); ``None`` = all."""
    cameras: str | None = None
    """Camera JSON for Human3.6M-layout datasets; ``None`` = the bundled Human3.6M calibration."""
    stride: int | None = None
    """Training window stride in frames; ``None`` = the model's window length (non-overlapping)."""
    flip: bool = True
    """Left/right flip augmentation of training windows (probability 0.5)."""
    val_fraction: float = 0.1
    """Fraction of training frames carved off (whole takes, all cameras) for validation; 0 = none."""
    max_frames_per_sequence: int | None = None
    """Use only the first N frames of every sequence (quick CPU runs)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"DataConfig: val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("stride", "max_frames_per_sequence"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"DataConfig: {name} must be a positive integer, got {value!r}")

    @property
    def is_3dhp(self) -> bool:
        return self.dataset == "3dhp"


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder and in checkpoints."""

    preset: str = "small"
    """Model preset (``config.PRESETS``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of ModelConfig/DiffusionConfig fields, e.g. ``{frames: 27, graph: false}``."""
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint: str = "checkpoint/run"
    """Run folder: ``last/`` and ``best/`` checkpoints, ``config.yaml``, ``log.csv``, ``steps.csv``."""
    epochs: int = 100
    batch_size: int | None = None
    """Windows per batch (per process under DDP); ``None`` = about 972 frames (the paper's 4 x 243)."""
    lr: float | None = None
    """AdamW learning rate; ``None`` = 6e-5 (7e-5 for 3dhp)."""
    lr_decay: float | None = None
    """Per-epoch multiplicative LR decay; ``None`` = 0.993 (0.995 for 3dhp)."""
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    """Max global gradient norm; 0 = no clipping."""
    ema_decay: float = 0.0
    """EMA of the weights per step (e.g. 0.999); 0 = off. Evaluation uses EMA weights when present."""
    amp: str = "auto"
    """Autocast: ``auto`` (bf16 on CUDA, off on CPU), ``none``, ``bf16``, ``fp16`` (with a grad scaler)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``cuda:0,1`` (under torchrun, local rank r: the r-th)."""
    seed: int = 0
    resume: bool = False
    """Continue from ``<checkpoint>/last`` exactly (same data order, RNG and optimizer state)."""
    overwrite: bool = False
    """Allow starting a new run in a folder that already holds one."""
    save_every_steps: int = 0
    """Also write ``last`` every N optimisation steps (mid-epoch); 0 = only at epoch ends."""
    max_steps: int | None = None
    """Stop (and checkpoint) after this many optimisation steps in total."""
    budget_min: float | None = None
    """Stop (and checkpoint) after this many minutes of ``budget_clock`` time in this invocation."""
    budget_clock: str = "wall"
    """Clock of ``budget_min``: "wall" (elapsed time) or "cpu" (this process's CPU time, which other jobs
    on a shared machine cannot shrink: equal budgets for benchmark variants)."""
    val_hypotheses: int = 1
    """Hypotheses H used for the per-epoch validation score (P-Agg MPJPE)."""
    val_steps: int = 2
    """DDIM steps K used for the validation score."""
    val_max_windows: int = 128
    """At most this many (evenly spaced) windows are scored per validation."""
    select_on_test: bool = False
    """Choose ``best`` on the TEST split instead of validation (labelled in metadata and reports)."""
    num_workers: int = 0
    log_every_steps: int = 10
    """Write a row to ``steps.csv`` every N steps."""
    progress_bar: bool = True
    """tqdm bars (only on a TTY, rank 0)."""
    tensorboard: bool = True
    """TensorBoard event files in the run folder when ``tensorboard`` is installed."""

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            self.data = _build(DataConfig, self.data, "data")
        if self.amp not in AMP_MODES:
            raise ValueError(f"TrainConfig: amp must be one of {AMP_MODES}, got {self.amp!r}")
        for name in ("epochs", "val_hypotheses", "val_steps", "val_max_windows", "log_every_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        for name in ("batch_size", "max_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        if self.save_every_steps < 0 or self.num_workers < 0:
            raise ValueError("TrainConfig: save_every_steps and num_workers must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig: ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"TrainConfig: budget_clock must be 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.budget_min is not None and self.budget_min <= 0:
            raise ValueError(f"TrainConfig: budget_min must be > 0, got {self.budget_min}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a nested dict (as in the YAML file); unknown keys raise ``ValueError``."""
        values = dict(values)
        data = _build(DataConfig, values.pop("data", None) or {}, f"{source}: data")
        return _build(cls, {**values, "data": data}, source)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved(self) -> TrainConfig:
        """Copy with every ``None`` default that depends on the dataset or model filled in."""
        from posediffusion.config import preset

        model_config = preset(self.preset, **self.model)  # validates preset and overrides
        frames = model_config.model.frames
        lr, decay = PUBLISHED_LR["3dhp" if self.data.is_3dhp else "h36m"]
        data = dataclasses.replace(
            self.data,
            stride=self.data.stride or frames,
            subjects_train=self.data.subjects_train or (None if self.data.is_3dhp else H36M_TRAIN_SUBJECTS),
            subjects_test=self.data.subjects_test or (None if self.data.is_3dhp else H36M_TEST_SUBJECTS),
        )
        return dataclasses.replace(
            self, data=data, lr=self.lr if self.lr is not None else lr,
            lr_decay=self.lr_decay if self.lr_decay is not None else decay,
            batch_size=self.batch_size or max(1, round(PAPER_FRAMES_PER_BATCH / frames)),
        )


def _build(cls: type, values: dict[str, Any], source: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid: {sorted(names)}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ValueError(f"{source}: {err}") from err


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config (unknown keys are an error naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    return TrainConfig.from_dict(values, source=str(path))


def save_train_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as YAML atomically."""
    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


# ----------------------------------------------------------------------------------------------- data


def load_sequences(data: DataConfig, split: str) -> list:
    """Sequences of the ``"train"`` or ``"test"`` subjects of ``data`` (a resolved DataConfig).

    Raises ``FileNotFoundError`` naming the missing file (and the keypoint files that do exist).
    """
    from posediffusion.data.h36m import load_h36m
    from posediffusion.data.mpi_inf_3dhp import load_3dhp

    subjects = data.subjects_train if split == "train" else data.subjects_test
    folder = Path(data.data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found (set --data-dir)")
    if data.is_3dhp:
        sequences = load_3dhp(folder, split=split, subjects=subjects)
    else:
        _check_h36m_files(folder, data.dataset, data.keypoints)
        sequences = load_h36m(folder, name=data.dataset, keypoints=data.keypoints, subjects=subjects,
                              actions=data.actions, cameras=data.cameras)
    if data.max_frames_per_sequence:
        sequences = [truncate_sequence(s, data.max_frames_per_sequence) for s in sequences]
    return sequences


def _check_h36m_files(folder: Path, name: str, keypoints: str) -> None:
    path_3d, path_2d = folder / f"data_3d_{name}.npz", folder / f"data_2d_{name}_{keypoints}.npz"
    if not path_3d.is_file():
        found = sorted(p.name[len("data_3d_"):-4] for p in folder.glob("data_3d_*.npz"))
        raise FileNotFoundError(f"{path_3d}: not found; datasets in {folder}: {found or 'none'}")
    if not path_2d.is_file():
        found = sorted(p.name[len(f"data_2d_{name}_"):-4] for p in folder.glob(f"data_2d_{name}_*.npz"))
        raise FileNotFoundError(f"{path_2d}: not found (keypoints {keypoints!r}); keypoints available for "
                                f"{name!r}: {found or 'none'}")


def truncate_sequence(sequence: Any, frames: int) -> Any:
    """The first ``frames`` frames of a Sequence (every per-frame field cut)."""
    if sequence.num_frames <= frames:
        return sequence
    cut = {k: getattr(sequence, k)[:frames] for k in ("keypoints_2d", "pose_3d", "trajectory", "valid")
           if getattr(sequence, k) is not None}
    extra = {k: v[:frames] if isinstance(v, np.ndarray) and len(v) == sequence.num_frames else v
             for k, v in sequence.extra.items()}
    return dataclasses.replace(sequence, **cut, extra=extra)


def split_validation(sequences: list, fraction: float, seed: int) -> tuple[list, list]:
    """Carve whole takes (one subject/action, all its cameras) off for validation: (train, val).

    Takes are drawn in a seeded random order until ``fraction`` of the frames is reached; at least one take
    stays in training. Splitting by take (not by camera or frame) keeps the same motion out of both sides.
    """
    takes = sorted({(s.subject, s.action) for s in sequences})
    if fraction <= 0 or len(takes) < 2:
        return list(sequences), []
    frames = {t: 0 for t in takes}
    for s in sequences:
        frames[(s.subject, s.action)] += s.num_frames
    order = np.random.default_rng(seed).permutation(len(takes))
    target, chosen, total = fraction * sum(frames.values()), set(), 0
    for i in order[: len(takes) - 1]:
        if total >= target:
            break
        chosen.add(takes[i])
        total += frames[takes[i]]
    val = [s for s in sequences if (s.subject, s.action) in chosen]
    return [s for s in sequences if (s.subject, s.action) not in chosen], val


# ------------------------------------------------------------------------------------------- helpers


class ExponentialMovingAverage:
    """EMA of a model's floating-point state: ``shadow <- d * shadow + (1 - d) * value``.

    ``d = min(decay, (1 + n) / (10 + n))`` after n previous updates (the usual EMA warm-up): without it a
    short CPU run's EMA would still be dominated by the random initialisation (0.999^1000 = 37 %).
    n is the global step, so resuming needs no extra state.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, num_updates: int) -> None:
        decay = min(self.decay, (1 + num_updates) / (10 + num_updates))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value, 1.0 - decay)
            else:
                self.shadow[key].copy_(value)


@dataclass
class Progress:
    """Where a run stands; stored in checkpoint metadata so that ``resume`` continues exactly."""

    epoch: int = 0
    """Index of the epoch in progress (0-based); equals the number of finished epochs at epoch ends."""
    step_in_epoch: int = 0
    """Optimisation steps already done in ``epoch``."""
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    best_score_mm: float | None = None
    best_epoch: int | None = None


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model, the step losses of this call, where."""

    model: torch.nn.Module
    losses: list[float]
    progress: Progress
    run_dir: Path
    stopped_early: bool = False


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
    """``auto``/``cpu``/``cuda``/``cuda:N``/``cuda:0,1`` -> the device of this (local) process."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or cuda:N,M,..., got {spec!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    ids = [int(i) for i in spec.partition(":")[2].split(",") if i] or list(range(torch.cuda.device_count()))
    if len(ids) > 1 and "LOCAL_RANK" not in os.environ:
        log.warning("several GPUs %s given without torchrun: using cuda:%d only "
                    "(launch with torchrun --nproc_per_node=%d to use all)", ids, ids[0], len(ids))
    return torch.device("cuda", ids[local_rank % len(ids)])


def setup_runtime(config: TrainConfig) -> Runtime:
    """Device, AMP and (under ``torchrun``) the process group: NCCL on CUDA, gloo on CPU."""
    world_size, local_rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    amp = config.amp if config.amp != "auto" else ("bf16" if device.type == "cuda" else "none")
    if amp != "none" and device.type != "cuda":
        log.warning("%s autocast on CPU: slower than fp32 for small models (CPU_BUDGET.md)", amp)
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if world_size > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return Runtime(device, amp_dtype, dist.get_rank(), dist.get_world_size(), owns)
    return Runtime(device, amp_dtype)


def step_seed(seed: int, rank: int, step: int) -> int:
    """RNG seed of one optimisation step: a fixed function of (run seed, rank, global step)."""
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + step) % (2**63 - 1)


class _LossModule(torch.nn.Module):
    """Makes ``model.training_loss`` the ``forward`` so DistributedDataParallel can wrap it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x2d: torch.Tensor, x3d: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.model.training_loss(x2d, x3d, generator=generator)


def epoch_batches(dataset: Any, config: TrainConfig, runtime: Runtime, epoch: int) -> list[list[int]]:
    """Index batches of one epoch for this rank.

    The order is ``DistributedSampler``'s (a function of ``seed`` and ``epoch``); incomplete last batches
    are dropped unless the rank's share is smaller than one batch.
    """
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True,
                                 seed=config.seed)
    sampler.set_epoch(epoch)
    indices, size = list(sampler), config.batch_size
    batches = [indices[i : i + size] for i in range(0, len(indices), size)]
    if len(batches) > 1 and len(batches[-1]) < size:
        batches = batches[:-1]
    return batches


# ------------------------------------------------------------------------------------------- logging


class RunLogger:
    """Rank-0 logs of a run: ``steps.csv`` (every few steps), ``log.csv`` (per epoch), TensorBoard, tqdm."""

    STEP_FIELDS = ("global_step", "epoch", "loss_m", "lr")
    EPOCH_FIELDS = ("epoch", "global_step", "lr", "train_loss_m", "selection_split", "selection_mpjpe_mm",
                    "best", "elapsed_s")

    def __init__(self, run_dir: Path, config: TrainConfig, runtime: Runtime, progress: Progress) -> None:
        self.enabled, self.config, self.start = runtime.is_main, config, time.monotonic()
        self.steps_csv, self.epochs_csv = run_dir / "steps.csv", run_dir / "log.csv"
        self.tensorboard = None
        if not self.enabled:
            return
        # rows written after the checkpoint we continue from belong to the lost future: drop them
        _truncate_csv(self.steps_csv, self.STEP_FIELDS, "global_step", progress.global_step)
        _truncate_csv(self.epochs_csv, self.EPOCH_FIELDS, "epoch", progress.epoch)
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                log.info("tensorboard is not installed: CSV logs only (pip install tensorboard)")

    def bar(self, iterable: Any, total: int, initial: int, epoch: int) -> Any:
        from tqdm.auto import tqdm

        show = self.enabled and self.config.progress_bar and sys.stderr.isatty()
        return tqdm(iterable, total=total, initial=initial, desc=f"epoch {epoch + 1}/{self.config.epochs}",
                    disable=not show, leave=False, dynamic_ncols=True)

    def step(self, progress: Progress, loss: float, lr: float) -> None:
        if not self.enabled or progress.global_step % self.config.log_every_steps:
            return
        row = [progress.global_step, progress.epoch, f"{loss:.6f}", lr]
        _append_csv(self.steps_csv, self.STEP_FIELDS, row)
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss_m", loss, progress.global_step)
            self.tensorboard.add_scalar("train/lr", lr, progress.global_step)

    def epoch(self, progress: Progress, lr: float, train_loss: float, split: str, score: float | None,
              is_best: bool) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        score_text = "" if score is None else f"{score:.2f}"
        _append_csv(self.epochs_csv, self.EPOCH_FIELDS, [progress.epoch, progress.global_step, lr,
                                                         f"{train_loss:.6f}", split, score_text, int(is_best),
                                                         f"{elapsed:.1f}"])
        log.info("epoch %d: loss %.2f mm, %s MPJPE %s mm%s, lr %.3g", progress.epoch, train_loss * 1000,
                 split, score_text or "-", " (best)" if is_best else "", lr)
        if self.tensorboard is not None and score is not None:
            self.tensorboard.add_scalar(f"{split}/mpjpe_mm", score, progress.global_step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _append_csv(path: Path, fields: tuple[str, ...], row: list[Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(fields)
        writer.writerow(row)


def _truncate_csv(path: Path, fields: tuple[str, ...], key: str, limit: int) -> None:
    """Keep the rows with ``key <= limit`` (and drop torn lines) so a resumed run never logs a step twice."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get(key, "").isdigit() and int(r[key]) <= limit
                and None not in r.values()]
    lines = [",".join(fields)] + [",".join(r[f] for f in fields) for r in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


# -------------------------------------------------------------------------------------------- loop


def train(config: TrainConfig, step_callback: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train (or resume) the model described by ``config``; see the module docstring.

    Args:
        config: the run configuration (``None`` fields are resolved with :meth:`TrainConfig.resolved`).
        step_callback: called as ``step_callback(global_step, loss)`` after every optimisation step
            (tests use it to simulate a crash).

    Returns:
        The trained model (unwrapped, on the training device), the losses of the steps run by this call,
        the final progress and the run folder.
    """
    from torch.utils.data import DataLoader

    from posediffusion.data.windows import WindowDataset

    config = config.resolved()
    runtime = setup_runtime(config)
    run_dir = Path(config.checkpoint)
    state = _TrainingState.create(config, runtime)
    train_seqs, select_seqs, split = prepare_splits(config)
    dataset = WindowDataset(train_seqs, state.frames, stride=config.data.stride, flip=config.data.flip,
                            seed=config.seed)
    progress = state.start_or_resume(run_dir)
    logger = RunLogger(run_dir, config, runtime, progress)
    net = state.wrapped()
    generator = torch.Generator(device=runtime.device)
    losses, start = [], _budget_clock(config)
    stopped = config.max_steps is not None and progress.global_step >= config.max_steps
    log.info("training %s on %d windows (%d sequences), batch %d, %d process(es), device %s",
             config.preset, len(dataset), len(train_seqs), config.batch_size, runtime.world_size,
             runtime.device)
    while progress.epoch < config.epochs and not stopped:
        dataset.set_epoch(progress.epoch)
        batches = epoch_batches(dataset, config, runtime, progress.epoch)
        todo = batches[progress.step_in_epoch:]
        loader = DataLoader(dataset, batch_sampler=todo, num_workers=config.num_workers)
        state.model.train()
        for batch in logger.bar(loader, len(batches), progress.step_in_epoch, progress.epoch):
            seed = step_seed(config.seed, runtime.rank, progress.global_step)
            loss = state.step(net, batch, generator, seed, progress.global_step)
            progress.global_step += 1
            progress.step_in_epoch += 1
            progress.epoch_loss_sum += loss
            losses.append(loss)
            logger.step(progress, loss, state.lr)
            if step_callback is not None:
                step_callback(progress.global_step, loss)
            stopped = _should_stop(config, runtime, progress, start)
            if stopped or (config.save_every_steps and progress.global_step % config.save_every_steps == 0
                           and progress.step_in_epoch < len(batches)):
                break
        if progress.step_in_epoch >= len(batches):
            _finish_epoch(state, progress, logger, select_seqs, split, len(batches))
        state.save(run_dir / "last", progress, split)
    logger.close()
    if runtime.owns_process_group:
        import torch.distributed as dist

        dist.destroy_process_group()
    if stopped:
        log.info("stopped at step %d (max_steps/budget); resume with --resume", progress.global_step)
    return TrainResult(state.model, losses, progress, run_dir, stopped_early=stopped)


def prepare_splits(config: TrainConfig) -> tuple[list, list, str]:
    """(training sequences, selection sequences, selection split name) for a resolved config.

    The selection split is a validation set carved from the training subjects by take, or the test
    subjects when ``select_on_test`` is set (labelled "test" everywhere), or none (``"none"``).
    """
    train_seqs, val_seqs = split_validation(load_sequences(config.data, "train"), config.data.val_fraction,
                                            config.seed)
    if config.select_on_test:
        log.warning("checkpoint selection on the TEST split (--select-on-test): 'best' is tuned on test data")
        return train_seqs, load_sequences(config.data, "test"), "test"
    if not val_seqs:
        log.info("no validation split (val_fraction=0 or a single take): 'best' is not written")
        return train_seqs, [], "none"
    log.info("validation: %d sequences (%s)", len(val_seqs),
             ", ".join(sorted({f"{s.subject}/{s.action}" for s in val_seqs}))[:200])
    return train_seqs, val_seqs, "validation"


def _budget_clock(config: TrainConfig) -> float:
    """Seconds on the clock ``config.budget_clock`` names (wall: monotonic; cpu: this process's CPU time)."""
    return time.process_time() if config.budget_clock == "cpu" else time.monotonic()


def _should_stop(config: TrainConfig, runtime: Runtime, progress: Progress, start: float) -> bool:
    """``max_steps`` reached, or the time budget spent (decided by rank 0, so every rank agrees)."""
    if config.max_steps is not None and progress.global_step >= config.max_steps:
        return True
    if config.budget_min is None:
        return False
    spent = _budget_clock(config) - start
    over = torch.tensor(float(spent > config.budget_min * 60), device=runtime.device)
    if runtime.world_size > 1:
        import torch.distributed as dist

        dist.broadcast(over, src=0)
    return bool(over.item())


def _finish_epoch(state: _TrainingState, progress: Progress, logger: RunLogger, select_seqs: list,
                  split: str, num_batches: int) -> None:
    """LR decay, selection score, ``best`` checkpoint and the epoch's log row."""
    lr, train_loss = state.lr, progress.epoch_loss_sum / max(num_batches, 1)
    state.scheduler.step()
    progress.epoch, progress.step_in_epoch, progress.epoch_loss_sum = progress.epoch + 1, 0, 0.0
    score = state.selection_score(select_seqs) if select_seqs and state.runtime.is_main else None
    is_best = score is not None and (progress.best_score_mm is None or score < progress.best_score_mm)
    if is_best:
        progress.best_score_mm, progress.best_epoch = score, progress.epoch
    logger.epoch(progress, lr, train_loss, split, score, is_best)
    if is_best:
        state.save(Path(state.config.checkpoint) / "best", progress, split, with_training_state=False)
    elif state.runtime.world_size > 1:
        state.barrier()


class _TrainingState:
    """Model, optimizer, LR schedule, grad scaler and EMA of one run, with save/resume and one step."""

    def __init__(self, config: TrainConfig, runtime: Runtime, model: torch.nn.Module) -> None:
        self.config, self.runtime, self.model = config, runtime, model
        self.frames = model.config.model.frames
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
        self.ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay > 0 else None

    @classmethod
    def create(cls, config: TrainConfig, runtime: Runtime) -> _TrainingState:
        from posediffusion.model.pose_diffusion import PoseDiffusion

        torch.manual_seed(config.seed)  # the same initial weights on every rank and every fresh run
        model = PoseDiffusion.from_preset(config.preset, **config.model)
        return cls(config, runtime, model.to(runtime.device))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def wrapped(self) -> torch.nn.Module:
        """The loss module, inside DistributedDataParallel when several processes train."""
        net = _LossModule(self.model)
        if self.runtime.world_size == 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def step(self, net: torch.nn.Module, batch: dict[str, Any], generator: torch.Generator,
             seed: int, global_step: int) -> float:
        """One optimisation step on ``batch`` with every RNG reseeded from ``seed``; returns the loss (m).

        ``global_step`` counts the steps taken before this one (the EMA warm-up reads it).
        """
        torch.manual_seed(seed)
        generator.manual_seed(seed)
        device, amp = self.runtime.device, self.runtime.amp_dtype
        x2d, x3d = batch["x2d"].to(device, non_blocking=True), batch["x3d"].to(device, non_blocking=True)
        autocast = torch.autocast(device.type, dtype=amp) if amp is not None else _no_autocast()
        with autocast:
            loss = net(x2d, x3d, generator)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model, global_step)
        return float(loss.detach())

    def selection_score(self, sequences: list) -> float:
        """P-Agg MPJPE (mm) on ``sequences`` with the weights evaluation will use (EMA when on)."""
        import copy

        from posediffusion.evaluate import window_mpjpe

        model = self.model
        if self.ema is not None:
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.ema.shadow)
        score = window_mpjpe(model, sequences, hypotheses=self.config.val_hypotheses,
                             steps=self.config.val_steps, max_windows=self.config.val_max_windows,
                             batch_size=self.config.batch_size, seed=self.config.seed)
        self.model.train()
        return score

    def barrier(self) -> None:
        if self.runtime.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def save(self, path: Path, progress: Progress, split: str, with_training_state: bool = True) -> None:
        """Rank 0 writes the checkpoint folder ``path`` atomically; every rank waits for it."""
        from posediffusion.checkpoint import save_checkpoint

        if self.runtime.is_main:
            state = None
            if with_training_state:
                state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                         "scaler": self.scaler.state_dict(), "rng_torch": torch.get_rng_state()}
            save_checkpoint(path, self.model, run_config=self.config.to_dict(),
                            metadata=self._metadata(progress, split, path.name), training_state=state,
                            ema_weights=self.ema.shadow if self.ema is not None else None)
        self.barrier()

    def _metadata(self, progress: Progress, split: str, kind: str) -> dict[str, Any]:
        from posediffusion import __version__

        c = self.config
        return {
            "kind": kind,
            "preset": c.preset,
            "progress": dataclasses.asdict(progress),
            "selection": {"split": split, "select_on_test": c.select_on_test,
                          "metric": f"P-Agg MPJPE (mm), H={c.val_hypotheses}, K={c.val_steps}, no flip, "
                                    f"<= {c.val_max_windows} windows"},
            "data": {"dataset": c.data.dataset, "keypoints": c.data.keypoints,
                     "subjects_train": c.data.subjects_train, "subjects_test": c.data.subjects_test},
            "world_size": self.runtime.world_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {"posediffusion": __version__, "torch": torch.__version__},
        }

    def start_or_resume(self, run_dir: Path) -> Progress:
        """Fresh progress (refusing to clobber an existing run unless ``overwrite``) or the restored one."""
        if not self.config.resume:
            if ((run_dir / "last").exists() or (run_dir / "best").exists()) and not self.config.overwrite:
                raise ValueError(f"{run_dir}: already holds a training run; pass --resume to continue it or "
                                 "--overwrite to start a new one there")
            if self.runtime.is_main:
                run_dir.mkdir(parents=True, exist_ok=True)
                save_train_config(self.config, run_dir / "config.yaml")
            return Progress()
        return self._restore(run_dir)

    def _restore(self, run_dir: Path) -> Progress:
        from posediffusion.checkpoint import load_weights_into, read_checkpoint

        checkpoint = read_checkpoint(run_dir, "last")
        load_weights_into(self.model, checkpoint)
        state = checkpoint.training_state(self.runtime.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_torch"].cpu())
        if self.ema is not None:
            if not checkpoint.has_ema:
                raise ValueError(f"{checkpoint.path}: has no EMA weights but ema_decay > 0; resume with the "
                                 "run's own settings")
            self.ema.shadow = {k: v.to(self.runtime.device) for k, v in checkpoint.weights(ema=True).items()}
        saved_world = checkpoint.metadata.get("world_size", 1)
        if saved_world != self.runtime.world_size:
            log.warning("resuming a %d-process run with %d processes: the data order changes",
                        saved_world, self.runtime.world_size)
        progress = Progress(**checkpoint.metadata["progress"])
        log.info("resumed %s at epoch %d, step %d", checkpoint.path, progress.epoch, progress.global_step)
        return progress


def _no_autocast() -> Any:
    import contextlib

    return contextlib.nullcontext()
