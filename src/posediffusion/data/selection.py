"""Which sequences a run uses: load the train/test subjects of a :class:`DataConfig`, cut them short, and
carve a validation split off the training takes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from posediffusion.config import DataConfig
from posediffusion.data.h36m import load_h36m
from posediffusion.data.mpi_inf_3dhp import load_3dhp
from posediffusion.data.sequence import Sequence


def load_sequences(data: DataConfig, split: str, camera_ids: Iterable[str] | None = None) -> list[Sequence]:
    """Sequences of the ``"train"`` or ``"test"`` subjects of ``data`` (a resolved DataConfig).

    ``camera_ids`` keeps only those cameras' views (Human3.6M layouts skip the others' projection work).
    Raises ``FileNotFoundError`` naming the missing file (and the keypoint files that do exist).
    """
    subjects = data.subjects_train if split == "train" else data.subjects_test
    folder = Path(data.data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found (set --data-dir)")
    if data.is_3dhp:
        sequences = load_3dhp(folder, split=split, subjects=subjects)
    else:
        _check_h36m_files(folder, data.dataset, data.keypoints)
        sequences = load_h36m(folder, name=data.dataset, keypoints=data.keypoints, subjects=subjects,
                              actions=data.actions, cameras=data.cameras, camera_ids=camera_ids)
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


def truncate_sequence(sequence: Sequence, frames: int) -> Sequence:
    """The first ``frames`` frames of a Sequence (every per-frame field cut)."""
    if sequence.num_frames <= frames:
        return sequence
    cut = {k: getattr(sequence, k)[:frames] for k in ("keypoints_2d", "pose_3d", "trajectory", "valid")
           if getattr(sequence, k) is not None}
    extra = {k: v[:frames] if isinstance(v, np.ndarray) and len(v) == sequence.num_frames else v
             for k, v in sequence.extra.items()}
    return dataclasses.replace(sequence, **cut, extra=extra)


def split_validation(sequences: list[Sequence], fraction: float, seed: int
                     ) -> tuple[list[Sequence], list[Sequence]]:
    """Carve whole takes (one subject/action, all its cameras) off for validation: (train, val).

    Takes are drawn in a seeded random order until ``fraction`` of the frames is reached; at least one take
    stays in training. Splitting by take (not by camera or frame) keeps the same motion out of both sides.
    """
    chosen = validation_takes(sequences, fraction, seed)
    val = [s for s in sequences if (s.subject, s.action) in chosen]
    return [s for s in sequences if (s.subject, s.action) not in chosen], val


def validation_takes(sequences: list[Sequence], fraction: float, seed: int) -> set[tuple[str, str]]:
    """The (subject, action) takes :func:`split_validation` holds out of ``sequences`` (empty for
    ``fraction <= 0`` or a single take)."""
    takes = sorted({(s.subject, s.action) for s in sequences})
    if fraction <= 0 or len(takes) < 2:
        return set()
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
    return chosen
