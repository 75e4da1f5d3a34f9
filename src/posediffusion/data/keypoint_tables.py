"""Readers of array-like keypoint files: the plain Human3.6M-17 npz and csv, MediaPipe BlazePose-33 (JSON,
npz, long and wide csv dumps), VideoPose3D's ``data_2d_custom_*.npz`` and Detectron2's raw keypoint npz
(VideoPose3D's infer_video_d2.py). Each returns :class:`Detections`.

The two VideoPose3D layouts store pickled dicts and lists; they are read only through
``io_utils.read_npz(path, allow_pickle=True)``, whose restricted unpickler builds arrays and plain
containers and never runs code. Every other npz is read without pickle (an object array is refused).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.data.keypoint_common import (
    MAX_FRAME_NUMBER,
    Detections,
    Person,
    frame_slots,
    read_json,
)
from posediffusion.data.keypoint_json import DETECTRON2_MIN_CONFIDENCE
from posediffusion.io_utils import npz_dict, read_npz
from posediffusion.skeleton import H36M_17

NPZ_EXPECTED = ("npz with 'keypoints' (F, 17, 2) pixels in Human3.6M order and 'image_size' (2,) "
                "(or --image-size)")

# ---------------------------------------------------------------------------------------------------------
# MediaPipe


def _landmark_person(landmarks: list) -> Person:
    """33 MediaPipe landmark dicts {'x', 'y', 'visibility'} -> person (normalised x, y)."""
    points = np.array([[lm["x"], lm["y"], lm.get("visibility", 1.0)] for lm in landmarks], dtype=np.float64)
    return Person(points, float(points[:, 2].mean()))


def _mediapipe_people(frame: Any) -> list[Person]:
    """One MediaPipe JSON frame (several accepted spellings) -> people."""
    if not frame:
        return []
    if isinstance(frame, dict):
        key = next((k for k in ("pose_landmarks", "landmarks", "landmark") if k in frame), None)
        if key is None:
            raise KeyError(f"a frame without 'pose_landmarks', 'landmarks' or 'landmark' "
                           f"(keys {sorted(frame)})")
        return _mediapipe_people(frame[key])
    if isinstance(frame[0], dict) and "x" not in frame[0]:  # [{'landmark': [...]}, ...]
        return [p for item in frame for p in _mediapipe_people(item)]
    if isinstance(frame[0], list):  # Tasks API: a list of people
        return [_landmark_person(p) for p in frame if p]
    return [_landmark_person(frame)]


def read_mediapipe(path: Path) -> Detections:
    suffix, ids = path.suffix.lower(), None
    if suffix == ".npz":
        frames, size, fps = _mediapipe_npz(path)
    elif suffix == ".csv":
        (frames, ids), size, fps = _mediapipe_csv(path), None, None
    else:
        data = read_json(path)
        size, fps = (data.get("image_size"), data.get("fps")) if isinstance(data, dict) else (None, None)
        frames = [_mediapipe_people(f) for f in (data["frames"] if isinstance(data, dict) else data)]
    xy = np.concatenate([p.points[:, :2] for people in frames for p in people] or [np.zeros((0, 2))])
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) and np.median(np.abs(xy)) > 2.0:
        raise ValueError(f"{path}: MediaPipe x, y must be normalised to [0, 1]; these look like pixels "
                         "(use the csv or npz format for pixel coordinates)")
    if any(len(p.points) != 33 for people in frames for p in people):
        raise ValueError(f"{path}: expected 33 BlazePose landmarks per person")
    return Detections(frames, "blazepose33", tuple(size) if size else None, fps, normalised=True,
                      frame_ids=ids, tool="MediaPipe")


def _mediapipe_npz(path: Path) -> tuple[list[list[Person]], tuple | None, Any]:
    """npz 'landmarks' (F, 33, C >= 4: x, y, z, visibility[, presence]) -> frames."""
    npz = read_npz(path, what="keypoint", hint="keypoint npz")
    if "landmarks" not in npz:
        raise ValueError(f"{path}: no 'landmarks' key; expected BlazePose landmarks (F, 33, 4)")
    landmarks = np.asarray(npz["landmarks"], dtype=np.float64)
    size = tuple(np.asarray(npz["image_size"]).reshape(-1)) if "image_size" in npz else None
    fps = npz.get("fps")
    if landmarks.ndim != 3 or landmarks.shape[1] != 33 or landmarks.shape[2] < 4:
        raise ValueError(f"{path}: 'landmarks' must be (F, 33, 4) x, y, z, visibility; got {landmarks.shape}")
    points = landmarks[..., [0, 1, 3]]
    frames = [[Person(p, float(np.nanmean(p[:, 2])))] if np.isfinite(p).any() else [] for p in points]
    return frames, size, fps


#: Wide MediaPipe csv column: ``L0_x``, ``landmark_12_visibility``, ``3_y`` (prefix, index, coordinate).
_WIDE_LANDMARK = re.compile(r"^(?:[a-z]+_?)?(\d+)_(x|y|z|v|vis|visibility|presence)$")
#: csv header spellings -> the names the readers use
CSV_ALIASES = {"landmarkid": "landmark", "landmark_id": "landmark", "landmark_index": "landmark",
               "frame_id": "frame", "frame_idx": "frame", "frame_index": "frame", "frame_number": "frame"}


def csv_header(path: Path) -> list[str]:
    """The first csv row, stripped, lower-case, with :data:`CSV_ALIASES` applied."""
    with open(path, newline="") as fh:
        names = [h.strip().lower() for h in next(csv.reader(fh), [])]
    return [CSV_ALIASES.get(name, name) for name in names]


def wide_landmark_columns(header: list[str]) -> dict[tuple[int, str], int] | None:
    """(landmark, 'x'|'y'|'visibility') -> column of a wide MediaPipe csv, or ``None`` if not one."""
    found = {}
    for i, name in enumerate(header):
        match = _WIDE_LANDMARK.match(name)
        if match:
            found[(int(match[1]), "visibility" if match[2] in ("v", "vis") else match[2])] = i
    return found if {(j, a) for j in range(33) for a in "xy"} <= found.keys() else None


def _mediapipe_csv(path: Path) -> tuple[list[list[Person]], list[int]]:
    """Long 'frame,landmark,x,y[,z][,visibility]' (also 'Frame,LandmarkID,X,Y') or wide
    'frame,L0_x,L0_y,L0_z,L0_visibility,...' (one row per frame, 'frame' optional) -> frames."""
    header = csv_header(path)
    columns = wide_landmark_columns(header)
    if columns is None:
        rows = read_csv_rows(path, required={"frame", "landmark", "x", "y"})
        table, ids = long_table(path, rows, "landmark", 33, int, "visibility")
        return [[Person(points, float(points[:, 2].mean()))] for points in table], ids
    data = _numeric_rows(path)
    xy = data[:, [columns[(j, a)] for j in range(33) for a in "xy"]].reshape(-1, 33, 2)
    has_vis = all((j, "visibility") in columns for j in range(33))
    vis = data[:, [columns[(j, "visibility")] for j in range(33)]] if has_vis else np.ones(xy.shape[:2])
    points = np.concatenate([xy, vis[..., None]], axis=-1)
    if "frame" in header:
        index, count, ids = frame_slots(path, data[:, header.index("frame")].tolist())
    else:
        index, count, ids = np.arange(len(points)), len(points), list(range(len(points)))
    frames: list[list[Person]] = [[] for _ in range(count)]
    for row, slot in zip(points, index, strict=True):
        if np.isfinite(row[:, :2]).any():  # an empty row: no detection in that frame
            frames[slot] = [Person(row, float(np.nanmean(row[:, 2])))]
    return frames, ids


# ---------------------------------------------------------------------------------------------------------
# Plain Human3.6M-17 npz and csv


def read_npz_keypoints(path: Path) -> Detections:
    npz = read_npz(path, what="keypoint", hint="keypoint npz")
    if "keypoints" not in npz:
        raise ValueError(f"{path}: missing key 'keypoints'; expected {NPZ_EXPECTED}, found {sorted(npz)}")
    pixels = np.asarray(npz["keypoints"], dtype=np.float64)
    size = tuple(np.asarray(npz["image_size"]).reshape(-1)) if "image_size" in npz else None
    conf = np.asarray(npz["confidence"], dtype=np.float64) if "confidence" in npz else None
    fps = npz.get("fps")
    if pixels.ndim != 3 or pixels.shape[1:] != (17, 2):
        raise ValueError(f"{path}: 'keypoints' must be (F, 17, 2) pixels, got {pixels.shape}")
    if conf is None:
        conf = np.ones(pixels.shape[:2])
    elif conf.shape != pixels.shape[:2]:
        raise ValueError(f"{path}: 'confidence' must be {pixels.shape[:2]}, got {conf.shape}")
    ids = _increasing_ids(np.asarray(npz["frame_ids"])) if "frame_ids" in npz else None
    if "frame_ids" in npz and (ids is None or len(ids) != len(pixels)):
        raise ValueError(f"{path}: 'frame_ids' must be ({len(pixels)},) increasing whole numbers")
    points = np.concatenate([pixels, conf[..., None]], axis=-1)
    return Detections([[Person(p, 1.0)] for p in points], "h36m17", image_size=size, fps=fps, frame_ids=ids)


def _increasing_ids(values: np.ndarray) -> list[int] | None:
    """Strictly increasing whole numbers below ``MAX_FRAME_NUMBER`` as ints, else ``None``."""
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number) or values.dtype.kind == "c":
        return None
    values = values.astype(np.float64)
    ok = np.isfinite(values).all() and (np.abs(values) <= MAX_FRAME_NUMBER).all()
    if not (ok and (values == np.round(values)).all() and (np.diff(values) > 0).all()):
        return None
    return [int(v) for v in values]


def read_csv_rows(path: Path, required: set[str]) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        names = {name: CSV_ALIASES.get(name.strip().lower(), name.strip().lower())
                 for name in reader.fieldnames or []}
        if not required <= set(names.values()):
            raise ValueError(f"{path}: csv header {sorted(names.values())} lacks "
                             f"{sorted(required - set(names.values()))}")
        return [{names[k]: (v or "").strip() for k, v in row.items() if k} for row in reader]


def long_table(path: Path, rows: list[dict[str, str]], joint_key: str, num_joints: int,
               joint_index: Callable[[str], int], conf_key: str) -> tuple[np.ndarray, list[int]]:
    """Long csv rows (one per frame and joint) -> (F, K, 3) and the frame number of each frame; frames
    from min to max (sorted distinct numbers when sparse), absent rows zero."""
    if not rows:
        raise ValueError(f"{path}: csv has a header but no rows")
    try:
        numbers = [float(r["frame"]) for r in rows]
        joints = [joint_index(r[joint_key]) for r in rows]
        values = [[float(r["x"]), float(r["y"]), float(r[conf_key]) if r.get(conf_key) else 1.0]
                  for r in rows]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: bad csv value ({err})") from err
    index, count, ids = frame_slots(path, numbers)
    if min(joints) < 0 or max(joints) >= num_joints:
        raise ValueError(f"{path}: {joint_key} index out of range 0..{num_joints - 1}")
    out = np.zeros((count, num_joints, 3))
    out[index, joints] = values
    return out, ids


def _h36m_joint_index(name: str) -> int:
    """Human3.6M joint name (case-insensitive) or index -> index."""
    lowered = [j.lower() for j in H36M_17.joints]
    return lowered.index(name.lower()) if name.lower() in lowered else int(name)


def read_csv_keypoints(path: Path) -> Detections:
    header = csv_header(path)
    if "joint" in header:
        rows = read_csv_rows(path, required={"frame", "joint", "x", "y"})
        points, ids = long_table(path, rows, "joint", 17, _h36m_joint_index, "confidence")
    else:
        points, ids = _wide_table(path, header)
    return Detections([[Person(p, 1.0)] for p in points], "h36m17", frame_ids=ids)


def _numeric_rows(path: Path) -> np.ndarray:
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)
    if data.size == 0:
        raise ValueError(f"{path}: csv has a header but no rows")
    return data


def _wide_table(path: Path, header: list[str]) -> tuple[np.ndarray, list[int] | None]:
    """Wide csv (one row per frame: x0,y0,...,x16,y16[,c0,...,c16]) -> (F, 17, 3) and frame numbers (the
    'frame' column when it holds increasing whole numbers, else ``None``: rows are frames 0, 1, ...)."""
    needed = [f"{a}{j}" for j in range(17) for a in "xy"]
    if not set(needed) <= set(header):
        raise ValueError(f"{path}: csv header must hold 'frame,joint,x,y[,confidence]' or "
                         f"'x0,y0,...,x16,y16'; got {header[:6]}...")
    data = _numeric_rows(path)
    col = {name: i for i, name in enumerate(header)}
    xy = data[:, [col[n] for n in needed]].reshape(-1, 17, 2)
    has_conf = all(f"c{j}" in col for j in range(17))
    conf = data[:, [col[f"c{j}"] for j in range(17)]] if has_conf else np.ones(xy.shape[:2])
    ids = _increasing_ids(data[:, col["frame"]]) if "frame" in col else None
    return np.concatenate([xy, conf[..., None]], axis=-1), ids


# ---------------------------------------------------------------------------------------------------------
# VideoPose3D: data_2d_custom_*.npz and Detectron2's raw npz (infer_video_d2.py)

#: VideoPose3D ``layout_name`` -> source layout; ``keypoints_symmetry`` ([left], [right]) of each
VP3D_LAYOUTS = {"coco": "coco17", "h36m": "h36m17"}
VP3D_SYMMETRY = {"coco17": ([1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]),
                 "h36m17": ([4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16])}


def read_videopose3d(path: Path) -> Detections:
    """``positions_2d`` {video: {'custom': [(F, 17, 2)]}} (pixels, all frames) and ``metadata``
    {'layout_name', 'num_joints', 'keypoints_symmetry', 'video_metadata': {video: {'w', 'h'}}}."""
    npz = read_npz(path, allow_pickle=True, what="keypoint", hint="VideoPose3D npz")
    positions = npz_dict(npz, "positions_2d", path)
    metadata = npz_dict(npz, "metadata", path) if "metadata" in npz else {}
    tracks = []  # (label, video, array)
    for video, value in positions.items():
        for sub, arrays in (value.items() if isinstance(value, dict) else [("", value)]):
            arrays = list(arrays) if isinstance(arrays, (list, tuple)) else [arrays]
            for cam, array in enumerate(arrays):
                label = "/".join(str(part) for part in (video, sub) if part != "")
                tracks.append((label + (f"[{cam}]" if len(arrays) > 1 else ""), video, array))
    if len(tracks) != 1:
        names = ", ".join(label for label, _, _ in tracks[:6]) + (", ..." if len(tracks) > 6 else "")
        raise ValueError(f"{path}: holds {len(tracks)} 2D tracks ({names or 'none'}); lift reads a file "
                         "with one (run prepare_data_2d_custom.py on a folder with one video's npz)")
    _, video, array = tracks[0]
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] < 2:
        raise ValueError(f"{path}: the 2D track of {video!r} must be (F, J, 2), got {array.shape}")
    layout = _vp3d_layout(path, metadata, array.shape[1])
    conf = array[..., 2] if array.shape[2] > 2 else np.ones(array.shape[:2])
    points = np.concatenate([array[..., :2], conf[..., None]], axis=-1)
    meta = (metadata.get("video_metadata") or {}).get(video) or {}
    size = (meta["w"], meta["h"]) if isinstance(meta, dict) and {"w", "h"} <= meta.keys() else None
    return Detections([[Person(p, 1.0)] for p in points], layout, size, tool="VideoPose3D")


def _symmetry_layout(symmetry: Any) -> str | None:
    try:
        sides = [[int(j) for j in side] for side in symmetry]
    except (TypeError, ValueError):
        return None
    return next((layout for layout, sym in VP3D_SYMMETRY.items() if sides == [list(s) for s in sym]), None)


def _vp3d_layout(path: Path, metadata: dict, joints: int) -> str:
    """Source layout from ``layout_name`` (else ``keypoints_symmetry``), checked against the joint count."""
    name = metadata.get("layout_name")
    symmetry = metadata.get("keypoints_symmetry")
    by_symmetry = _symmetry_layout(symmetry) if symmetry is not None else None
    layout = VP3D_LAYOUTS.get(name) if name is not None else by_symmetry
    if layout is None:
        raise ValueError(f"{path}: metadata layout_name {name!r} is not one of {sorted(VP3D_LAYOUTS)}"
                         if name is not None else f"{path}: no metadata 'layout_name' ('coco' or 'h36m')")
    if by_symmetry is not None and by_symmetry != layout:
        raise ValueError(f"{path}: metadata layout_name {name!r} but keypoints_symmetry is that of "
                         f"{by_symmetry}")
    if joints != 17 or metadata.get("num_joints", 17) != 17:
        raise ValueError(f"{path}: {layout} tracks need 17 joints; the file has {joints} "
                         f"(num_joints {metadata.get('num_joints')})")
    return layout


def read_detectron2(path: Path) -> Detections:
    """Per frame ``keypoints[f][1]`` (N, 4, 17) x, y, logit, prob and ``boxes[f][1]`` (N, 5) x1, y1, x2,
    y2, score (class 1 = person; ``[]`` when nobody was found); ``metadata`` {'w', 'h'}. The person score
    is the box score, a keypoint's confidence its prob (Detectron2's score scale: threshold 0.05)."""
    npz = read_npz(path, allow_pickle=True, what="keypoint", hint="Detectron2 npz")
    missing = [key for key in ("boxes", "keypoints") if key not in npz]
    if missing:
        raise ValueError(f"{path}: no {missing} key(s); expected Detectron2's boxes, keypoints, metadata")
    boxes, keypoints = npz["boxes"], npz["keypoints"]
    if len(boxes) != len(keypoints):
        raise ValueError(f"{path}: 'boxes' ({len(boxes)} frames) and 'keypoints' ({len(keypoints)}) differ")
    frames: list[list[Person]] = []
    for f in range(len(keypoints)):
        kps, bbs = _person_class(keypoints[f]), _person_class(boxes[f])
        if kps is None:
            frames.append([])
            continue
        if kps.ndim != 3 or kps.shape[1] != 4 or kps.shape[2] != 17:
            raise ValueError(f"{path}: frame {f}: keypoints must be (N, 4, 17) x, y, logit, prob; "
                             f"got {kps.shape}")
        fits = bbs is not None and bbs.ndim == 2 and bbs.shape[0] == len(kps) and bbs.shape[1] >= 5
        scores = bbs[:, 4] if fits else kps[:, 3].mean(axis=1)
        frames.append([Person(np.stack([k[0], k[1], k[3]], axis=1), float(s))
                       for k, s in zip(kps, scores, strict=True)])
    meta = npz_dict(npz, "metadata", path) if "metadata" in npz else {}
    size = (meta["w"], meta["h"]) if {"w", "h"} <= meta.keys() else None
    return Detections(frames, "coco17", size, min_confidence=DETECTRON2_MIN_CONFIDENCE, tool="Detectron2")


def _person_class(entry: Any) -> np.ndarray | None:
    """Class 1 (person) of one frame's per-class list as a float array; ``None`` when empty."""
    value = entry[1] if len(entry) > 1 else None
    array = np.asarray(value, dtype=np.float64) if value is not None else None
    return array if array is not None and array.size else None
