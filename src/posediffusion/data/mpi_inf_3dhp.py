"""MPI-INF-3DHP loader for the P-STMO npz layout (the ``annot3`` variant; ``docs/formats.md``).

* ``data_train_3dhp.npz``: ``data`` = "S<i> Seq<j>" -> [camera id -> {``data_2d`` (F, 17, 2) px,
  ``data_3d`` (F, 17, 3) mm}, fps].
* ``data_test_3dhp.npz``: ``data`` = "TS1".."TS6" -> {``data_2d``, ``data_3d``, ``valid`` (F,)}; an optional
  per-frame ``activity`` (F,) array is kept in ``Sequence.extra["activity"]``.

Poses are reordered to Human3.6M-17 (``skeleton.MPI_TO_H36M``); ``skeleton.H36M_TO_MPI`` converts back
for the official 3DHP scoring. Millimetres become metres at load time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.camera import normalize_screen
from posediffusion.data.sequence import Sequence
from posediffusion.data.validation import check_array, select_names
from posediffusion.io_utils import npz_dict, read_npz
from posediffusion.skeleton import MPI_TO_H36M, root_relative

logger = logging.getLogger(__name__)

#: (width px, height px, focal mm, sensor width mm) of the test cameras; training cameras are approximated
#: by the TS1-TS4 studio camera (their per-camera calibration is not in the npz).
STUDIO_CAMERA = (2048, 2048, 7.32506, 10.0)
OUTDOOR_CAMERA = (1920, 1080, 8.770747, 10.0)
#: Capture rate of the test sequences (TS1-TS4 studio 25 fps, TS5-TS6 outdoor 50 fps).
TEST_FPS = {"TS1": 25.0, "TS2": 25.0, "TS3": 25.0, "TS4": 25.0, "TS5": 50.0, "TS6": 50.0}
_OUTDOOR_SEQUENCES = ("TS5", "TS6")


def camera_for(sequence: str, camera_id: str = "") -> dict[str, Any]:
    """Pinhole camera dict (no distortion) of a 3DHP sequence (``"TS5"``, ``"S1 Seq1"``, ...).

    Focal length in px = focal_mm / sensor_width_mm * width_px; principal point = image centre; ``R`` = I
    and ``T`` = 0 because the 3D annotations are already in the camera frame.
    """
    width, height, focal_mm, sensor_mm = OUTDOOR_CAMERA if sequence in _OUTDOOR_SEQUENCES else STUDIO_CAMERA
    focal_px = focal_mm / sensor_mm * width
    return {
        "id": camera_id,
        "R": np.eye(3),
        "T": np.zeros(3),
        "focal_length": np.array([focal_px, focal_px]),
        "center": np.array([width / 2.0, height / 2.0]),
        "radial_distortion": np.zeros(3),
        "tangential_distortion": np.zeros(2),
        "res_w": width,
        "res_h": height,
    }


def _fill_invalid(arr: np.ndarray, valid: np.ndarray, path: Path, where: str) -> np.ndarray:
    """Replace non-finite invalid frames by the next finite frame (the last one at the end); raise on valid
    frames.

    Invalid frames are never scored but still reach the network inside windows, so they must be finite.
    """
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)  # (F,)
    if (bad & valid).any():
        raise ValueError(f"{path}: {where}: NaN or inf on valid frames {np.flatnonzero(bad & valid)[:5]}...")
    if not bad.any():
        return arr
    good = np.flatnonzero(~bad)
    if len(good) == 0:
        raise ValueError(f"{path}: {where}: no finite frame")
    nearest = good[np.clip(np.searchsorted(good, np.flatnonzero(bad)), 0, len(good) - 1)]
    logger.info("%s: %s: %d invalid frames with NaN/inf filled from a neighbour", path, where, bad.sum())
    arr = arr.copy()
    arr[bad] = arr[nearest]
    return arr


def _make_sequence(entry: dict[str, Any], path: Path, key: str, subject: str, action: str, camera_id: str,
                   valid: np.ndarray | None, fps: float) -> Sequence:
    """One Sequence from a {data_2d px, data_3d mm} entry in 3DHP joint order."""
    where = f"{key}/camera {camera_id}" if camera_id else key
    if not isinstance(entry, dict) or not {"data_2d", "data_3d"} <= set(entry):
        raise ValueError(f"{path}: {where}: expected a dict with 'data_2d' and 'data_3d'")
    # non-finite values are allowed here: _fill_invalid rejects them on valid frames only
    kp_px = check_array(entry["data_2d"], path, f"{where}/data_2d", (17,), 2, finite=False)
    pose_mm = check_array(entry["data_3d"], path, f"{where}/data_3d", (17,), 3, frames=len(kp_px),
                          finite=False)
    valid = np.ones(len(kp_px), dtype=bool) if valid is None else valid
    if len(valid) != len(kp_px):
        raise ValueError(f"{path}: {where}: 'valid' has {len(valid)} frames, data_2d {len(kp_px)}")
    kp_px = _fill_invalid(kp_px, valid, path, f"{where}/data_2d")[:, list(MPI_TO_H36M)]  # (F, 17, 2)
    pose_m = _fill_invalid(pose_mm, valid, path, f"{where}/data_3d")[:, list(MPI_TO_H36M)] / 1000.0
    camera = camera_for(key, camera_id)
    return Sequence(
        keypoints_2d=normalize_screen(kp_px, camera["res_w"], camera["res_h"]).astype(np.float32),
        pose_3d=root_relative(pose_m).astype(np.float32),
        trajectory=pose_m[:, 0].astype(np.float32),  # pelvis, camera frame, metres
        camera=camera,
        valid=valid,
        subject=subject,
        action=action,
        action_group=action,
        camera_id=camera_id,
        fps=fps,
        extra={"dataset": "3dhp"},
    )


def _train_sequences(data: dict, path: Path, subjects: list[str] | None, sequences: list[str] | None,
                     cameras: list[str] | None) -> list[Sequence]:
    out = []
    for key in data:
        subject, _, seq = key.partition(" ")
        if (subjects is not None and subject not in subjects) or (
                sequences is not None and seq not in sequences and key not in sequences):
            continue
        value = data[key]
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not isinstance(value[0], dict):
            raise ValueError(f"{path}: {key}: expected [camera id -> {{data_2d, data_3d}}, fps]")
        views, fps = value
        for cam in select_names(map(str, views), cameras, "cameras", path):
            entry = views[cam] if cam in views else views[int(cam)]
            out.append(_make_sequence(entry, path, key, subject, seq, cam, None, float(fps)))
    return out


def _test_sequences(data: dict, path: Path, subjects: list[str] | None,
                    sequences: list[str] | None) -> list[Sequence]:
    out = []
    for key in data:
        if (subjects is not None and key not in subjects) or (sequences is not None and key not in sequences):
            continue
        entry = data[key]
        if not isinstance(entry, dict) or "valid" not in entry:
            raise ValueError(f"{path}: {key}: expected a dict with 'data_2d', 'data_3d' and 'valid'")
        valid = np.asarray(entry["valid"]).reshape(-1) == 1
        seq = _make_sequence(entry, path, key, key, key, "", valid, TEST_FPS.get(key, 25.0))
        if "activity" in entry:
            seq.extra["activity"] = np.asarray(entry["activity"]).reshape(-1).astype(np.int64)
        out.append(seq)
    return out


def load_3dhp(data_dir: str | Path, split: str = "train", subjects: Iterable[str] | None = None,
              sequences: Iterable[str] | None = None, cameras: Iterable[str] | None = None) -> list[Sequence]:
    """Load MPI-INF-3DHP (P-STMO npz) as Sequences in Human3.6M-17 joint order.

    Args:
        data_dir: folder holding ``data_train_3dhp.npz`` / ``data_test_3dhp.npz``.
        split: ``"train"`` or ``"test"``.
        subjects: train: ``["S1", ...]``; test: ``["TS1", ...]``. ``None`` = all.
        sequences: train: ``["Seq1", "Seq2"]`` or full keys ``"S1 Seq1"``; test: ``["TS1", ...]``.
        cameras: train only, camera ids to keep (``"0"``..``"8"``); ``None`` = all in the file.

    Returns:
        Sequences with ``keypoints_2d`` (F, 17, 2) normalised by the sequence's image width,
        ``pose_3d`` (F, 17, 3) root-relative metres, ``trajectory`` (F, 3) metres, a pinhole ``camera`` dict
        (:func:`camera_for`), ``valid`` (F,) bool (test ``valid == 1``; all True for train). Train:
        subject "S<i>", action "Seq<j>", camera_id the camera; test: subject = action = "TS<k>".

    Raises:
        FileNotFoundError: missing file. ValueError: wrong layout, shapes, NaN/inf on valid frames, unknown
        names; the message names the file.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(data_dir) / f"data_{split}_3dhp.npz"
    data = npz_dict(read_npz(path, allow_pickle=True), "data", path)  # P-STMO pickles its dicts
    subjects = None if subjects is None else [str(s) for s in subjects]
    sequences = None if sequences is None else [str(s) for s in sequences]
    cameras = None if cameras is None else [str(c) for c in cameras]
    _check_names(data, path, split, subjects, sequences)
    if split == "train":
        out = _train_sequences(data, path, subjects, sequences, cameras)
    else:
        if cameras is not None:
            raise ValueError(f"{path}: the test split has one camera per sequence; do not pass cameras")
        out = _test_sequences(data, path, subjects, sequences)
    if not out:
        raise ValueError(f"{path}: no sequences selected")
    logger.info("loaded %d sequences from %s", len(out), path)
    return out


def _check_names(data: dict, path: Path, split: str, subjects: list[str] | None,
                 sequences: list[str] | None) -> None:
    """Unknown subject or sequence names raise ``ValueError`` listing what the file has."""
    keys = [str(k) for k in data]
    if split == "train":
        known_subjects = {k.partition(" ")[0] for k in keys}
        known_sequences = {k.partition(" ")[2] for k in keys} | set(keys)
    else:
        known_subjects = known_sequences = set(keys)
    for wanted, known, what in ((subjects, known_subjects, "subjects"), (sequences, known_sequences,
                                                                         "sequences")):
        unknown = sorted(set(wanted or ()) - known)
        if unknown:
            raise ValueError(f"{path}: unknown {what} {unknown}; available: {sorted(known)}")
