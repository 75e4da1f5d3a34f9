"""The training loop (the run's settings are a :class:`~posediffusion.config.TrainConfig`).

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

import contextlib
import copy
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from posediffusion import __version__
from posediffusion.checkpoint import build_model, load_weights_into, read_checkpoint, save_checkpoint
from posediffusion.config import TrainConfig, load_config_yaml, resume_differences, save_config_yaml
from posediffusion.data.augment import training_windows
from posediffusion.data.selection import load_sequences, split_validation
from posediffusion.evaluate import window_mpjpe
from posediffusion.model.pose_diffusion import PoseDiffusion
from posediffusion.run_log import Progress, RunLock, RunLogger
from posediffusion.runtime import Runtime, setup_runtime

log = logging.getLogger(__name__)


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
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model, the step losses of this call, where."""

    model: torch.nn.Module
    losses: list[float]
    progress: Progress
    run_dir: Path
    stopped_early: bool = False


def step_seed(seed: int, rank: int, step: int) -> int:
    """RNG seed of one optimisation step: a fixed function of (run seed, rank, global step)."""
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + step) % (2**63 - 1)


class _LossModule(torch.nn.Module):
    """Makes ``model.training_loss`` the ``forward`` so DistributedDataParallel can wrap it; ``joint_dropout``
    is the run's ``TrainConfig.joint_dropout`` (a training setting, not stored in the model)."""

    def __init__(self, model: torch.nn.Module, joint_dropout: float = 0.0) -> None:
        super().__init__()
        self.model, self.joint_dropout = model, joint_dropout

    def forward(self, x2d: torch.Tensor, x3d: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.model.training_loss(x2d, x3d, generator=generator, joint_dropout=self.joint_dropout)


def epoch_batches(dataset: Any, config: TrainConfig, runtime: Runtime, epoch: int) -> list[list[int]]:
    """Index batches of one epoch for this rank.

    The order is ``DistributedSampler``'s (a function of ``seed`` and ``epoch``); incomplete last batches
    are dropped unless the rank's share is smaller than one batch.
    """
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True,
                                 seed=config.seed)
    sampler.set_epoch(epoch)
    indices, size = list(sampler), config.batch_size
    batches = [indices[i : i + size] for i in range(0, len(indices), size)]
    if len(batches) > 1 and len(batches[-1]) < size:
        batches = batches[:-1]
    return batches


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
    config = config.resolved()
    run_dir = Path(config.checkpoint)
    lock = RunLock(run_dir) if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext()
    with lock:
        return _train(config, run_dir, step_callback)


def _train(config: TrainConfig, run_dir: Path, step_callback: Callable[[int, float], None] | None
           ) -> TrainResult:
    if config.resume:
        check_resume(config, run_dir)
    runtime = setup_runtime(config)
    state = _TrainingState.create(config, runtime, run_dir)
    train_seqs, select_seqs, split = prepare_splits(config)
    dataset = training_windows(train_seqs, state.frames, config.data, config.seed)  # never val/test
    progress = state.start_or_resume(run_dir)
    logger = RunLogger(run_dir, config, runtime, progress)
    net = state.wrapped()
    generator = torch.Generator(device=runtime.device)
    losses, start = [], _budget_clock(config)
    snapshots = sorted(config.snapshot_minutes or [])  # minutes still to save
    stopped = config.max_steps is not None and progress.global_step >= config.max_steps
    log.info("training %s on %d windows (%d sequences), batch %d, %d process(es), device %s",
             config.preset, len(dataset), len(dataset.sequences), config.batch_size, runtime.world_size,
             runtime.device)
    while progress.epoch < config.epochs and not stopped:
        dataset.set_epoch(progress.epoch)
        batches = epoch_batches(dataset, config, runtime, progress.epoch)
        todo = batches[progress.step_in_epoch:]
        loader = DataLoader(dataset, batch_sampler=todo, num_workers=config.num_workers)
        state.model.train()
        for batch in logger.bar(loader, len(batches), progress.step_in_epoch, progress.epoch):
            seed = step_seed(config.seed, runtime.rank, progress.global_step)
            state.set_lr(progress)
            loss = state.step(net, batch, generator, seed, progress.global_step)
            progress.global_step += 1
            progress.step_in_epoch += 1
            progress.epoch_loss_sum += loss
            losses.append(loss)
            logger.step(progress, loss, state.lr)
            if step_callback is not None:
                step_callback(progress.global_step, loss)
            stopped = _budget_check(config, runtime, progress, start, len(batches))
            snapshots = _save_snapshots(config, state, progress, split, run_dir, start, snapshots)
            if (config.val_every_steps and progress.global_step % config.val_every_steps == 0
                    and progress.step_in_epoch < len(batches)):  # at an epoch end, _finish_epoch scores
                _select(state, progress, logger, select_seqs, split, "step")
            if stopped or (config.save_every_steps and progress.global_step % config.save_every_steps == 0
                           and progress.step_in_epoch < len(batches)):
                break
        if progress.step_in_epoch >= len(batches):
            _finish_epoch(state, progress, logger, select_seqs, split, len(batches))
        elif stopped and progress.selected_step != progress.global_step:
            _select(state, progress, logger, select_seqs, split, "end")  # every run ends with a selection
        state.save(run_dir / "last", progress, split)
    logger.close()
    if runtime.owns_process_group:
        dist.destroy_process_group()
    if stopped:
        log.info("stopped at step %d (max_steps/budget); resume with --resume", progress.global_step)
    return TrainResult(state.model, losses, progress, run_dir, stopped_early=stopped)


def check_resume(config: TrainConfig, run_dir: Path) -> None:
    """Refuse to resume with settings that differ from the run's ``config.yaml`` (budget/logging may)."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"{saved_path}: not found; --resume needs the run folder of a training run")
    conflicts, overrides = resume_differences(config, load_config_yaml(TrainConfig, saved_path).resolved())
    if conflicts:
        raise ValueError(f"{run_dir}: --resume with settings that differ from its config.yaml: "
                         f"{', '.join(conflicts)} (drop these flags to continue the run as it was)")
    for name in overrides:
        log.info("resume: %s changed for this continuation (allowed: budget, logging, machine)", name)


def prepare_splits(config: TrainConfig) -> tuple[list, list, str]:
    """(training sequences, selection sequences, selection split name) for a resolved config.

    The selection split is a validation set carved from the training subjects by take, or the test
    subjects when ``select_on_test`` is set (labelled "test" everywhere), or none (``"none"``).
    """
    train_seqs, val_seqs = split_validation(load_sequences(config.data, "train"), config.data.val_fraction,
                                            config.data.split_seed(config.seed))
    if config.select_on_test:
        log.warning("checkpoint selection on the TEST split (--select-on-test): 'best' is tuned on test data")
        return train_seqs, load_sequences(config.data, "test"), "test"
    if not val_seqs:
        log.info("no validation split (val_fraction=0 or a single take): 'best' is not written")
        return train_seqs, [], "none"
    log.info("validation: %d sequences (%s)", len(val_seqs),
             ", ".join(sorted({f"{s.subject}/{s.action}" for s in val_seqs}))[:200])
    return train_seqs, val_seqs, "validation"


def _save_snapshots(config: TrainConfig, state: _TrainingState, progress: Progress, split: str,
                    run_dir: Path, start: float, todo: list[float]) -> list[float]:
    """Write ``snapshots/<M>min`` for every mark M of ``todo`` that the clock has passed; returns the rest."""
    spent_min = (_budget_clock(config) - start) / 60
    while todo and spent_min >= todo[0]:
        state.save(run_dir / "snapshots" / f"{todo[0]:g}min", progress, split, with_training_state=False)
        todo = todo[1:]
    return todo


def _budget_clock(config: TrainConfig) -> float:
    """Seconds on the clock ``config.budget_clock`` names (wall: monotonic; cpu: this process's CPU time)."""
    return time.process_time() if config.budget_clock == "cpu" else time.monotonic()


def _budget_check(config: TrainConfig, runtime: Runtime, progress: Progress, start: float,
                  steps_per_epoch: int) -> bool:
    """Advance ``progress.schedule_fraction``; True when ``max_steps`` or the time budget is reached.

    The fraction of the run done is the largest of steps / max_steps, steps / (epochs x steps per epoch)
    and spent / budget_min; it never decreases, so a continuation after the end trains at the final rate.
    Rank 0 measures the time and broadcasts, so every rank uses the same learning rate and stops together.
    """
    fractions = [progress.global_step / (config.epochs * steps_per_epoch)]
    if config.max_steps is not None:
        fractions.append(progress.global_step / config.max_steps)
    spent = _budget_clock(config) - start
    if config.budget_min is not None:
        fractions.append(spent / (config.budget_min * 60))
    state = torch.tensor([max(fractions), float(config.budget_min is not None
                                                 and spent > config.budget_min * 60)], device=runtime.device)
    if runtime.world_size > 1:
        dist.broadcast(state, src=0)
    progress.schedule_fraction = max(progress.schedule_fraction, min(1.0, float(state[0])))
    steps_done = config.max_steps is not None and progress.global_step >= config.max_steps
    return steps_done or bool(state[1].item())


def learning_rate(config: TrainConfig, progress: Progress) -> float:
    """lr x linear warm-up x (decay^epoch for ``exponential`` | cosine to min_lr_ratio for ``cosine``)."""
    warmup = min(1.0, (progress.global_step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.lr_schedule == "exponential":
        return config.lr * warmup * config.lr_decay ** progress.epoch
    r, f = config.min_lr_ratio, progress.schedule_fraction
    return config.lr * warmup * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * f)))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on every parameter except those the model names in ``no_weight_decay()``
    (e.g. the energy regulator's map, whose few scalars decay would pin to zero)."""
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = list(model.named_parameters())
    unknown = exempt - {name for name, _ in named}
    if unknown:
        raise ValueError(f"no_weight_decay() names unknown parameters {sorted(unknown)}")
    return [{"params": [p for n, p in named if n not in exempt], "weight_decay": weight_decay},
            {"params": [p for n, p in named if n in exempt], "weight_decay": 0.0}]


def _finish_epoch(state: _TrainingState, progress: Progress, logger: RunLogger, select_seqs: list,
                  split: str, num_batches: int) -> None:
    """LR decay, then the epoch's selection score, ``best`` checkpoint and log row."""
    lr, train_loss = state.lr, progress.epoch_loss_sum / max(num_batches, 1)
    progress.epoch, progress.step_in_epoch, progress.epoch_loss_sum = progress.epoch + 1, 0, 0.0
    _select(state, progress, logger, select_seqs, split, "epoch", lr=lr, train_loss=train_loss)


def _select(state: _TrainingState, progress: Progress, logger: RunLogger, select_seqs: list, split: str,
            at: str, lr: float | None = None, train_loss: float | None = None) -> None:
    """Score the selection split now (``at``: "epoch", "step" or "end"), write ``best`` if it improved."""
    if not select_seqs and at != "epoch":
        return
    if train_loss is None:
        train_loss = progress.epoch_loss_sum / max(progress.step_in_epoch, 1)
    score = state.selection_score(select_seqs) if select_seqs and state.runtime.is_main else None
    progress.selected_step = progress.global_step
    is_best = score is not None and (progress.best_score_mm is None or score < progress.best_score_mm)
    if is_best:
        progress.best_score_mm, progress.best_epoch = score, progress.epoch
        progress.best_step = progress.global_step
    logger.selection(progress, state.lr if lr is None else lr, train_loss, split, score, is_best, at)
    if is_best:
        state.save(Path(state.config.checkpoint) / "best", progress, split, with_training_state=False)
    elif state.runtime.world_size > 1:
        state.barrier()


class _TrainingState:
    """Model, optimizer, LR schedule, grad scaler and EMA of one run, with save/resume and one step."""

    def __init__(self, config: TrainConfig, runtime: Runtime, model: torch.nn.Module) -> None:
        self.config, self.runtime, self.model = config, runtime, model
        self.frames = model.config.model.frames
        self.optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
        self.ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay > 0 else None

    @classmethod
    def create(cls, config: TrainConfig, runtime: Runtime, run_dir: Path) -> _TrainingState:
        torch.manual_seed(config.seed)  # the same initial weights on every rank and every fresh run
        if config.resume:
            # the network the run built: a key added to ModelConfig since keeps the run's (legacy) value
            model = build_model(read_checkpoint(run_dir, "last").model_config)
        else:
            model = PoseDiffusion.from_preset(config.preset, **config.model)
        return cls(config, runtime, model.to(runtime.device))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, progress: Progress) -> None:
        """Learning rate of the coming step: a pure function of the progress, so resume needs no state."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, progress)

    def wrapped(self) -> torch.nn.Module:
        """The loss module, inside DistributedDataParallel when several processes train."""
        net = _LossModule(self.model, self.config.joint_dropout)
        if self.runtime.world_size == 1:
            return net
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
            dist.barrier()

    def save(self, path: Path, progress: Progress, split: str, with_training_state: bool = True) -> None:
        """Rank 0 writes the checkpoint folder ``path`` atomically; every rank waits for it."""
        if self.runtime.is_main:
            state = None
            if with_training_state:
                state = {"optimizer": self.optimizer.state_dict(),
                         "scaler": self.scaler.state_dict(), "rng_torch": torch.get_rng_state()}
            save_checkpoint(path, self.model, run_config=self.config.to_dict(),
                            metadata=self._metadata(progress, split, path.name), training_state=state,
                            ema_weights=self.ema.shadow if self.ema is not None else None)
        self.barrier()

    def _metadata(self, progress: Progress, split: str, kind: str) -> dict[str, Any]:
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
                save_config_yaml(self.config, run_dir / "config.yaml")
            return Progress()
        return self._restore(run_dir)

    def _restore(self, run_dir: Path) -> Progress:
        checkpoint = read_checkpoint(run_dir, "last")
        load_weights_into(self.model, checkpoint)
        state = checkpoint.training_state(self.runtime.device)
        self.optimizer.load_state_dict(state["optimizer"])
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
    return contextlib.nullcontext()
