"""Checkpoints: one folder per checkpoint, written atomically, that never executes code when read.

Layout of a checkpoint folder (e.g. ``checkpoint/run/last/``)::

    model.safetensors     network weights (safetensors: tensors only)
    ema.safetensors       exponential-moving-average weights (only when EMA is on)
    config.json           {"model": <model + diffusion config>, "run": <train/data config>}
    metadata.json         progress (epoch, step), selection split, validation score, versions
    training_state.pt     optimizer, LR scheduler, AMP scaler and RNG state; read with
                          ``torch.load(weights_only=True)`` (plain tensors and containers only)

The folder is first written under a temporary name beside the target and then renamed into place, so a
reader sees either the old or the new checkpoint, never half of one. Replacing an existing folder takes two
renames (old -> ``.<name>.old-*``, new -> name); if a process dies between them, :func:`resolve_checkpoint`
falls back to the newest old folder, and the next write puts it back in place first. Each write also
removes what crashed writes left beside the target (``.<name>.tmp-*``, stale ``.<name>.old-*``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from posediffusion.config import PoseDiffusionConfig, with_legacy_defaults
from posediffusion.io_utils import give_default_mode
from posediffusion.model.pose_diffusion import PoseDiffusion

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
STATE_FILE = "training_state.pt"


def _leftovers(path: Path, kind: str) -> list[Path]:
    """``.<name>.<kind>-*`` folders beside ``path`` left by interrupted writes, newest first (by mtime)."""
    found = [p for p in path.parent.glob(f".{path.name}.{kind}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _clean_leftovers(path: Path) -> None:
    """Before a write: put an interrupted replacement's old folder back, then drop every leftover.

    Writers of one run folder are serialised by the run lock, so nothing here belongs to a live writer.
    """
    olds = _leftovers(path, "old")
    if olds and not path.exists():
        log.warning("%s: restoring %s left by an interrupted checkpoint write", path, olds[0])
        os.replace(olds.pop(0), path)
    for leftover in olds + _leftovers(path, "tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        give_default_mode(tmp)  # mkdtemp creates 0700
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            old.rmdir()
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def model_config_dict(model: torch.nn.Module) -> dict[str, Any]:
    """The JSON-ready config of a :class:`~posediffusion.model.pose_diffusion.PoseDiffusion`."""
    config = model.config
    if hasattr(config, "to_dict"):
        return json.loads(json.dumps(config.to_dict()))
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (e.g. tied weights)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    *,
    run_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    ema_weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    Args:
        path: the checkpoint folder to create or replace.
        model: the (unwrapped) model; its ``state_dict()`` and ``config`` are stored.
        run_config: the training/data configuration (JSON-serialisable).
        metadata: progress and provenance (JSON-serialisable).
        training_state: optimizer/scheduler/scaler/RNG state made of tensors, numbers, strings, lists and
            dicts only (it is read back with ``weights_only=True``).
        ema_weights: EMA copy of the weights, same keys as the model's state dict.
    """
    path = Path(path)
    config = {"model": model_config_dict(model), "run": run_config or {}}
    with atomic_directory(path) as tmp:
        save_file(_cpu_tensors(model.state_dict()), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if ema_weights is not None:
            save_file(_cpu_tensors(ema_weights), str(tmp / EMA_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / METADATA_FILE).write_text(json.dumps(metadata or {}, indent=2, sort_keys=True))
        if training_state is not None:
            torch.save(training_state, tmp / STATE_FILE)
    log.debug("saved checkpoint %s", path)
    return path


def resolve_checkpoint(path: str | Path, name: str | None = None) -> Path:
    """Find a checkpoint folder.

    ``path`` may be a checkpoint folder itself, or a run folder holding ``best/`` and/or ``last/`` (then
    ``name`` picks one; by default ``best`` if present, else ``last``). ``name`` may also be a path.
    Raises ``FileNotFoundError`` naming what was looked for.
    """
    path = Path(path)
    candidates = [path / name] if name else [path, path / "best", path / "last"]
    for candidate in candidates:
        if (candidate / WEIGHTS_FILE).is_file():
            return candidate
        interrupted = _leftovers(candidate, "old") if not candidate.exists() else []
        if interrupted and (interrupted[0] / WEIGHTS_FILE).is_file():
            log.warning("%s: using %s left by an interrupted checkpoint write", candidate, interrupted[0])
            return interrupted[0]
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no checkpoint found (looked for {WEIGHTS_FILE} in: {looked})")


@dataclass
class Checkpoint:
    """A checkpoint folder read from disk (weights are read on demand)."""

    path: Path
    model_config: dict[str, Any]
    run_config: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def has_ema(self) -> bool:
        return (self.path / EMA_FILE).is_file()

    def weights(self, ema: bool = False, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The stored state dict (``ema=True``: the EMA copy; ``ValueError`` if there is none)."""
        file = self.path / (EMA_FILE if ema else WEIGHTS_FILE)
        if ema and not file.is_file():
            raise ValueError(f"{self.path}: no EMA weights in this checkpoint ({EMA_FILE} missing)")
        try:
            return load_file(str(file), device=str(device))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{file}: unreadable safetensors file ({err})") from err

    def training_state(self, device: str | torch.device = "cpu") -> dict[str, Any]:
        """Optimizer/scheduler/RNG state, loaded without executing code (``weights_only=True``)."""
        file = self.path / STATE_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{file}: this checkpoint has no training state (cannot resume)")
        try:
            return torch.load(file, map_location=device, weights_only=True)
        except Exception as err:  # pickle errors, refused globals, truncated files
            # torch's message spans lines and suggests weights_only=False, which would run code: never
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{file}: cannot read training state safely ({reason})") from err


def read_checkpoint(path: str | Path, name: str | None = None) -> Checkpoint:
    """Read a checkpoint's config and metadata (see :func:`resolve_checkpoint` for ``path``/``name``)."""
    folder = resolve_checkpoint(path, name)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder}: checkpoint config/metadata unreadable ({err})") from err
    if "model" not in config:
        raise ValueError(f"{folder / CONFIG_FILE}: no 'model' section; not a posediffusion checkpoint")
    # keys added after a checkpoint was written take the values it was trained with (LEGACY_MODEL_DEFAULTS)
    return Checkpoint(folder, with_legacy_defaults(config["model"]), config.get("run", {}), metadata)


def _config_differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key, "<absent>"), found.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: checkpoint {a!r}, model {b!r}")
    return out


def load_weights_into(model: torch.nn.Module, checkpoint: Checkpoint, ema: bool = False) -> None:
    """Load ``checkpoint``'s weights into ``model``, refusing a checkpoint of another config or shape.

    Raises ``ValueError`` listing the differing config fields (e.g. a checkpoint of another preset) or
    the mismatching tensors.
    """
    differences = _config_differences(checkpoint.model_config, model_config_dict(model))
    if differences:
        raise ValueError(f"{checkpoint.path}: checkpoint was made for a different model configuration: "
                         + "; ".join(differences[:8]))
    state = checkpoint.weights(ema=ema)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{checkpoint.path}: weights do not fit the model (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shape mismatch {wrong[:5]})")
    model.load_state_dict(state)


def build_model(model_config: dict[str, Any], source: str = "checkpoint") -> torch.nn.Module:
    """A fresh ``PoseDiffusion`` from a stored config dict (``ValueError`` on unknown/invalid fields).

    Keys the dict lacks take ``config.LEGACY_MODEL_DEFAULTS`` (what checkpoints written before those keys
    existed were trained with), not today's defaults.
    """
    return PoseDiffusion.from_config(PoseDiffusionConfig.from_checkpoint_dict(model_config, source=source))


def load_model(path: str | Path, name: str | None = None, *, ema: bool | None = None,
               device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """Rebuild the model stored in a checkpoint, in eval mode on ``device``.

    ``ema=None`` uses the EMA weights when the checkpoint has them.
    """
    checkpoint = read_checkpoint(path, name)
    model = build_model(checkpoint.model_config, source=str(checkpoint.path / CONFIG_FILE))
    use_ema = checkpoint.has_ema if ema is None else ema
    load_weights_into(model, checkpoint, ema=use_ema)
    checkpoint.metadata = {**checkpoint.metadata, "weights": "ema" if use_ema else "raw"}
    return model.to(device).eval(), checkpoint
