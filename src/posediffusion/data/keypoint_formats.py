"""Per-tool readers of 2D keypoint files: each turns a file into :class:`Detections`, the people found in
every frame in the tool's own keypoint layout (COCO-17/133, Halpe-26/136, BODY_25, OpenPose COCO-18,
BlazePose-33 or Human3.6M-17) with the input's frame number of every frame. ``keypoints.load_keypoints``
maps those to Human3.6M-17 and fills gaps.

Formats and what their files look like: ``EXPECTED`` (and the table in ``docs/in-the-wild.md``); readers:
``READERS`` (``keypoint_json``: JSON files and folders; ``keypoint_tables``: npz, csv, MediaPipe);
guessing the format of a file: :func:`detect_format`.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.data.keypoint_common import (
    MAX_FRAME_NUMBER,
    Detections,
    Person,
    first_entry,
    is_dense,
    layout_for,
    read_json,
)
from posediffusion.data.keypoint_json import (
    is_poseflow,
    mmpose_folder_files,
    openpose_files,
    pose_detections,
    read_openpose,
    read_pose_json,
)
from posediffusion.data.keypoint_tables import (
    NPZ_EXPECTED,
    csv_header,
    read_csv_keypoints,
    read_detectron2,
    read_mediapipe,
    read_npz_keypoints,
    read_videopose3d,
    wide_landmark_columns,
)

__all__ = ["EXPECTED", "FORMATS", "MAX_FRAME_NUMBER", "READERS", "Detections", "Person", "detect_format",
           "is_dense"]

#: format -> what a file of that format must look like (used in error messages).
EXPECTED = {
    "coco": "MMPose JSON (frames of instances with 'keypoints' [[x, y]] and 'keypoint_scores'; or a folder "
            "of one such JSON per image), COCO-results JSON ([{'image_id', 'keypoints': [x, y, v] * 17, "
            "'score'}], Detectron2/AlphaPose), COCO keypoint annotations ({'images', 'annotations'}) or "
            "PoseFlow JSON ({image: [{'keypoints', 'scores', 'idx'}]})",
    "halpe": "AlphaPose Halpe-26/136 results JSON ([{'image_id', 'keypoints': [x, y, s] * 26 or 136, "
             "'score'}])",
    "openpose": "a folder of OpenPose '*_keypoints.json' files ({'people': [{'pose_keypoints_2d' or "
                "'pose_keypoints': [x, y, c] * 25 or 18}]})",
    "mediapipe": "BlazePose-33 landmarks with normalised x, y and visibility (JSON, npz 'landmarks' "
                 "(F, 33, 4), csv 'frame,landmark,x,y[,z],visibility' or 'frame,L0_x,L0_y,...,L32_y')",
    "npz": NPZ_EXPECTED,
    "csv": "csv with header 'frame,joint,x,y[,confidence]' or 'x0,y0,...,x16,y16[,c0,...,c16]'",
    "videopose3d": "VideoPose3D data_2d_custom npz ('positions_2d' {video: {'custom': [(F, 17, 2)]}}, "
                   "'metadata' with 'layout_name')",
    "detectron2": "Detectron2 keypoint npz from VideoPose3D's infer_video_d2.py ('boxes', 'keypoints' "
                  "[[], (N, 4, 17)] per frame, 'metadata' {'w', 'h'})",
}
FORMATS = tuple(EXPECTED)


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its extension and content; ``ValueError`` if none fits.

    A folder: OpenPose (``*_keypoints.json``, or JSON files holding ``people``), else MMPose per-image JSON
    (coco/halpe by keypoint count). ``.npz`` by its keys (read without loading any array): ``positions_2d``
    VideoPose3D, ``boxes`` + ``keypoints`` Detectron2, ``keypoints`` npz, ``landmarks`` MediaPipe. ``.csv``
    by its header. ``.json`` by its structure and keypoint count.
    """
    path = Path(path)
    guess: str | None = None
    try:
        if path.is_dir():
            guess = _detect_folder(path)
        elif path.suffix.lower() == ".npz":
            guess = _detect_npz(path)
        elif path.suffix.lower() == ".csv":
            guess = _detect_csv(path)
        elif path.suffix.lower() == ".json":
            guess = _detect_json(path, read_json(path))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read ({type(err).__name__}: {err})") from err
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: an unrecognised or malformed layout ({err!r})") from err
    if guess is None:
        expected = "; ".join(f"{name}: {text}" for name, text in EXPECTED.items())
        raise ValueError(f"{path}: not a recognised keypoint file (tried {', '.join(FORMATS)}). "
                         f"Expected one of -- {expected}")
    return guess


def _detect_folder(path: Path) -> str | None:
    files = openpose_files(path)
    if not files:
        return None
    if files[0].name.endswith("_keypoints.json"):
        return "openpose"
    docs = (read_json(file) for file in mmpose_folder_files(path))
    doc = next((doc for doc in docs if doc), None)  # the first file with somebody in it
    if isinstance(doc, dict) and "people" in doc:
        return "openpose"
    return _coco_or_halpe(path, read_pose_json(path, "auto").layout) if doc is not None else None


def _detect_json(path: Path, data: Any) -> str | None:
    """Format of a parsed JSON document, or ``None``."""
    if isinstance(data, dict):
        if "people" in data:
            raise ValueError(f"{path}: this is one OpenPose frame; pass the folder of *_keypoints.json files")
        if "instance_info" in data or {"images", "annotations"} <= data.keys() or is_poseflow(data):
            return _coco_or_halpe(path, _json_layout(path, data))
        if "frames" in data:
            return "mediapipe"
        return None
    if not isinstance(data, list):
        return None
    first = first_entry(data)
    inner = first_entry(first) if isinstance(first, list) else first
    if isinstance(inner, dict) and {"x", "y"} <= inner.keys() or isinstance(inner, list):
        return "mediapipe"
    if isinstance(inner, dict) and ({"instances", "keypoints"} & inner.keys()):
        return _coco_or_halpe(path, _json_layout(path, data))
    if isinstance(inner, dict) and {"landmark", "landmarks", "pose_landmarks"} & inner.keys():
        return "mediapipe"
    return None


def _json_layout(path: Path, data: Any) -> str:
    det = pose_detections(path, data)
    person = next((p for people in det.frames for p in people), None)
    if person is None:
        raise ValueError(f"{path}: no person in any frame")
    return layout_for(path, len(person.points), "auto")


def _coco_or_halpe(path: Path, layout: str) -> str:
    return "halpe" if layout.startswith("halpe") else "coco"


def _npz_keys(path: Path) -> set[str]:
    """The array names of an npz, from its zip directory (no array is read, nothing unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: cannot read keypoint npz ({' '.join(str(err).split())})") from err


def _detect_npz(path: Path) -> str | None:
    keys = _npz_keys(path)
    if "positions_2d" in keys:
        return "videopose3d"
    if {"boxes", "keypoints"} <= keys:
        return "detectron2"
    return "npz" if "keypoints" in keys else "mediapipe" if "landmarks" in keys else None


def _detect_csv(path: Path) -> str | None:
    header = csv_header(path)
    if {"landmark", "visibility"} & set(header) or wide_landmark_columns(header) is not None:
        return "mediapipe"
    if {"frame", "joint", "x", "y"} <= set(header) or {"x0", "y0", "x16", "y16"} <= set(header):
        return "csv"
    return None


# ---------------------------------------------------------------------------------------------------------
# Checks every reader's output goes through


def _finish(path: Path, det: Detections) -> Detections:
    """Frame numbers filled in (0, 1, ... when the file has none), track ids that are not unique within a
    frame dropped, and pixel coordinates that are all within [-1, 1] refused (normalised, not pixels)."""
    if det.frame_ids is None:
        det.frame_ids = list(range(len(det.frames)))
    assert len(det.frame_ids) == len(det.frames), "a reader returned frame ids that do not fit its frames"
    for people in det.frames:
        ids = [p.track_id for p in people if p.track_id is not None]
        if len(ids) != len(set(ids)):  # e.g. AlphaPose without --pose_track writes idx 0 for everybody
            det.frames = [[Person(p.points, p.score) for p in frame] for frame in det.frames]
            break
    if not det.normalised:
        points = np.concatenate([p.points for people in det.frames for p in people] or [np.zeros((0, 3))])
        detected = np.isfinite(points).all(axis=1) & (points[:, 2] > 0) & (points[:, :2] != 0).any(axis=1)
        if detected.any() and np.abs(points[detected, :2]).max() <= 1.0:
            raise ValueError(f"{path}: every keypoint lies within [-1, 1]: these are normalised coordinates, "
                             f"not pixels; this format needs pixel coordinates")
    return det


def _checked(reader: Callable[[Path], Detections]) -> Callable[[Path], Detections]:
    def read(path: Path) -> Detections:
        return _finish(path, reader(path))

    read.__name__ = read.__qualname__ = reader.__name__
    read.__doc__ = reader.__doc__
    return read


READERS: dict[str, Callable[[Path], Detections]] = {name: _checked(reader) for name, reader in {
    "coco": lambda path: read_pose_json(path, "coco"),
    "halpe": lambda path: read_pose_json(path, "halpe"),
    "openpose": read_openpose,
    "mediapipe": read_mediapipe,
    "npz": read_npz_keypoints,
    "csv": read_csv_keypoints,
    "videopose3d": read_videopose3d,
    "detectron2": read_detectron2,
}.items()}
