"""Rank-0 bookkeeping of a run folder: where the run stands (:class:`Progress`), the lock that keeps a
second run out, and the logs (``steps.csv``, ``log.csv``, TensorBoard and a tqdm bar).

A resumed run first drops the rows written after the checkpoint it continues from, so that no step or epoch
is ever logged twice.
"""

from __future__ import annotations

import csv
import fcntl
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from posediffusion.config import TrainConfig
from posediffusion.io_utils import write_text_atomic
from posediffusion.runtime import Runtime

log = logging.getLogger(__name__)


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
    """Finished epochs when ``best`` was written."""
    best_step: int | None = None
    """Global step when ``best`` was written."""
    selected_step: int | None = None
    """Global step of the last selection score (so the end of a budget is not scored twice)."""
    schedule_fraction: float = 0.0
    """Share of the run done, in [0, 1], as the cosine learning-rate schedule sees it (monotone)."""


class RunLock:
    """Exclusive lock on a run folder (``.lock``, ``flock``) for as long as a training run uses it.

    The operating system releases it when the process ends, also after ``kill -9``, so a crashed run never
    leaves a stale lock; a second run started on the same folder meanwhile gets a clear error.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path, self.handle = Path(run_dir) / ".lock", None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise ValueError(f"{self.path.parent}: another training run (pid {owner}) is using this folder; "
                             "wait for it or choose another -c") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class RunLogger:
    """Rank-0 logs of a run: ``steps.csv`` (every few steps), ``log.csv`` (one row per selection score: each
    epoch end, every ``val_every_steps`` and the end of a budget), TensorBoard, tqdm."""

    STEP_FIELDS = ("global_step", "epoch", "loss_m", "lr")
    EPOCH_FIELDS = ("epoch", "global_step", "lr", "train_loss_m", "selection_split", "selection_mpjpe_mm",
                    "best", "elapsed_s", "at")

    def __init__(self, run_dir: Path, config: TrainConfig, runtime: Runtime, progress: Progress) -> None:
        self.enabled, self.config, self.start = runtime.is_main, config, time.monotonic()
        self.steps_csv, self.epochs_csv = run_dir / "steps.csv", run_dir / "log.csv"
        self.tensorboard = None
        if not self.enabled:
            return
        # rows written after the checkpoint we continue from belong to the lost future: drop them
        _truncate_csv(self.steps_csv, self.STEP_FIELDS, "global_step", progress.global_step)
        _truncate_csv(self.epochs_csv, self.EPOCH_FIELDS, "global_step", progress.global_step)
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional: needs the tensorboard package

                self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                log.info("tensorboard is not installed: CSV logs only (pip install tensorboard)")

    def bar(self, iterable: Any, total: int, initial: int, epoch: int) -> Any:
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

    def selection(self, progress: Progress, lr: float, train_loss: float, split: str, score: float | None,
                  is_best: bool, at: str) -> None:
        """One ``log.csv`` row: ``epoch`` counts finished epochs; ``at`` is "epoch", "step" or "end"."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        score_text = "" if score is None else f"{score:.2f}"
        _append_csv(self.epochs_csv, self.EPOCH_FIELDS, [progress.epoch, progress.global_step, lr,
                                                         f"{train_loss:.6f}", split, score_text, int(is_best),
                                                         f"{elapsed:.1f}", at])
        log.info("%s %d (step %d): loss %.2f mm, %s MPJPE %s mm%s, lr %.3g",
                 "epoch" if at == "epoch" else "at", progress.epoch, progress.global_step, train_loss * 1000,
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
