"""Per-tool readers of 2D keypoint files: each turns a file into :class:`Detections`, the people found in
every frame in the tool's own keypoint layout (COCO-17/133, Halpe-26, BODY_25, OpenPose COCO-18,
BlazePose-33 or Human3.6M-17). ``keypoints.load_keypoints`` maps those to Human3.6M-17 and fills gaps.

Formats and what their files look like: ``EXPECTED`` (and ``docs/in-the-wild.md``); readers: ``READERS``;
guessing the format of a file: :func:`detect_format`.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.io_utils import read_npz
from posediffusion.skeleton import H36M_17

logger = logging.getLogger(__name__)

#: format -> what a file of that format must look like (used in error messages).
EXPECTED = {
    "coco": "MMPose predictions JSON (frames of instances with 'keypoints' [[x, y]] and 'keypoint_scores') "
            "or COCO-results JSON ([{'image_id', 'keypoints': [x, y, v] * 17, 'score'}])",
    "halpe": "AlphaPose Halpe-26 results JSON ([{'image_id', 'keypoints': [x, y, s] * 26, 'score'}])",
    "openpose": "a folder of OpenPose '*_keypoints.json' files ({'people': [{'pose_keypoints_2d': ...}]})",
    "mediapipe": "BlazePose-33 landmarks with normalised x, y and visibility (JSON, npz 'landmarks' "
                 "(F, 33, 4), or csv 'frame,landmark,x,y[,z],visibility')",
    "npz": "npz with 'keypoints' (F, 17, 2) pixels in Human3.6M order and 'image_size' (2,) "
           "(or --image-size)",
    "csv": "csv with header 'frame,joint,x,y[,confidence]' or 'x0,y0,...,x16,y16[,c0,...,c16]'",
}
FORMATS = tuple(EXPECTED)

Person = tuple[np.ndarray, float]  # ((K, 3) x, y, confidence; person score)


#: Largest magnitude of a frame number read from a file (beyond it float64 cannot count frames).
MAX_FRAME_NUMBER = 2**53


@dataclass
class Detections:
    """What a reader found: people per frame in a source layout (pixels unless ``normalised``).

    ``image_size`` and ``fps`` are as stored in the file (unchecked); ``keypoints.load_keypoints`` checks
    them.
    """

    frames: list[list[Person]]
    layout: str
    image_size: tuple | None = None
    fps: Any = None
    normalised: bool = False


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its extension and content; ``ValueError`` if none fits."""
    path = Path(path)
    guess: str | None = None
    if path.is_dir():
        guess = "openpose" if any(path.glob("*_keypoints.json")) else None
    elif path.suffix.lower() == ".npz":
        guess = _detect_npz(path)
    elif path.suffix.lower() == ".csv":
        try:
            guess = _detect_csv(path)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{path}: cannot read csv ({err})") from err
    elif path.suffix.lower() == ".json":
        try:
            guess = _detect_json(path, _read_json(path))
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
            if isinstance(err, ValueError) and str(err).startswith(str(path)):
                raise
            raise ValueError(f"{path}: JSON of an unrecognised or malformed layout ({err!r})") from err
    if guess is None:
        expected = "; ".join(f"{name}: {text}" for name, text in EXPECTED.items())
        raise ValueError(f"{path}: not a recognised keypoint file (tried {', '.join(FORMATS)}). "
                         f"Expected one of -- {expected}")
    return guess


# ---------------------------------------------------------------------------------------------------------
# Frame ordering helpers


def _frame_number(frame_id: Any) -> int | None:
    """Frame number from an int id or the last run of digits in a name ("frame_0012.jpg" -> 12)."""
    if isinstance(frame_id, (int, np.integer)) and not isinstance(frame_id, bool):
        return int(frame_id)
    digits = re.findall(r"\d+", str(frame_id)) if isinstance(frame_id, str) else []
    return int(digits[-1]) if digits else None


def _is_dense(first: int, last: int, distinct: int) -> bool:
    """Whether frame numbers ``first..last`` (``distinct`` of them used) may be expanded into a dense range
    with the gaps as empty frames. Sparse numbers (e.g. COCO image ids, or a file naming frames 0 and
    2,000,000) are not: every reader that takes frame numbers from a file keeps them in sorted order instead,
    so a small file cannot make the lifter allocate and interpolate millions of frames."""
    return last - first + 1 <= 4 * distinct + 100


def _frames_by_id(entries: list[tuple[Any, list[Person]]]) -> list[list[Person]]:
    """Group people by frame id. Numeric ids give a dense frame range (gaps become empty frames) unless
    they are sparse (:func:`_is_dense`)."""
    numbers = [_frame_number(frame_id) for frame_id, _ in entries]
    if entries and all(n is not None for n in numbers):
        first, last = min(numbers), max(numbers)
        if _is_dense(first, last, len(set(numbers))):
            frames: list[list[Person]] = [[] for _ in range(last - first + 1)]
            for n, (_, people) in zip(numbers, entries, strict=True):
                frames[n - first].extend(people)
            return frames
        logger.warning("frame ids are sparse (%d..%d for %d frames); using their sorted order", first, last,
                       len(set(numbers)))
        entries = sorted(entries, key=lambda e: _frame_number(e[0]))
    grouped: dict[Any, list[Person]] = {}
    for frame_id, people in entries:
        grouped.setdefault(frame_id, []).extend(people)
    return list(grouped.values())


def _layout_for(path: Path, num_keypoints: int, fmt: str) -> str:
    """Source layout name for a keypoint count, checked against the requested format."""
    by_count = {"coco": {17: "coco17", 133: "coco_wholebody133"}, "halpe": {26: "halpe26"}}
    for name, counts in by_count.items():
        if num_keypoints in counts and fmt in (name, "auto"):
            return counts[num_keypoints]
    raise ValueError(f"{path}: {num_keypoints} keypoints per person do not fit format {fmt!r}; expected "
                     "17 or 133 (coco) or 26 (halpe)")


# ---------------------------------------------------------------------------------------------------------
# Readers: path -> Detections


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: cannot read JSON ({type(err).__name__}: {err})") from err


def _first_entry(items: list) -> Any:
    """The first element of a list of frames that is not empty/None."""
    return next((item for item in items if item), None)


def _detect_json(path: Path, data: Any) -> str | None:
    """Format of a parsed JSON document, or ``None``."""
    if isinstance(data, dict):
        if "people" in data:
            raise ValueError(f"{path}: this is one OpenPose frame; pass the folder of *_keypoints.json files")
        if "instance_info" in data:
            return _coco_or_halpe(path, data["instance_info"])
        if "frames" in data:
            return "mediapipe"
        return None
    if not isinstance(data, list):
        return None
    first = _first_entry(data)
    inner = _first_entry(first) if isinstance(first, list) else first
    if isinstance(inner, dict) and {"x", "y"} <= inner.keys() or isinstance(inner, list):
        return "mediapipe"
    if isinstance(inner, dict) and ({"instances", "keypoints"} & inner.keys()):
        return _coco_or_halpe(path, data)
    if isinstance(inner, dict) and {"landmark", "landmarks", "pose_landmarks"} & inner.keys():
        return "mediapipe"
    return None


def _coco_or_halpe(path: Path, data: list) -> str:
    """'coco' or 'halpe' from the keypoint count of the first person in an MMPose/results JSON."""
    frames = _mmpose_or_results_frames(data)
    person = next((p for people in frames for p in people), None)
    if person is None:
        raise ValueError(f"{path}: no person in any frame")
    return "halpe" if _layout_for(path, len(person[0]), "auto") == "halpe26" else "coco"


def _mmpose_instance(instance: dict) -> Person:
    """MMPose instance {'keypoints': [[x, y]], 'keypoint_scores': [s], 'bbox_score'} -> person."""
    xy = np.asarray(instance["keypoints"], dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(instance.get("keypoint_scores", np.ones(len(xy))), dtype=np.float64).reshape(-1)
    score = instance.get("bbox_score")
    score = float(np.mean(score)) if score is not None else float(scores.mean())
    return np.concatenate([xy, scores[:, None]], axis=1), score


def _results_person(entry: dict) -> Person:
    """COCO-results entry {'keypoints': [x, y, v] * K, 'score'} -> person."""
    points = np.asarray(entry["keypoints"], dtype=np.float64).reshape(-1, 3)
    return points, float(entry.get("score", points[:, 2].mean()))


def _mmpose_or_results_frames(data: Any) -> list[list[Person]]:
    """The three MMPose layouts and the COCO-results layout -> people per frame."""
    if isinstance(data, dict):  # {'meta_info', 'instance_info'}
        data = data["instance_info"]
    first = _first_entry(data)
    if isinstance(first, list) or first is None:  # predictions: list of frames, each a list of instances
        return [[_mmpose_instance(inst) for inst in frame or []] for frame in data]
    if "instances" in first:  # [{'frame_id' | 'img_id', 'instances': [...]}]
        entries = [(frame.get("frame_id", frame.get("img_id", i)),
                    [_mmpose_instance(inst) for inst in frame["instances"]]) for i, frame in enumerate(data)]
        return _frames_by_id(entries)
    if "image_id" not in first:  # one image's MMPose instance list
        return [[_mmpose_instance(inst) for inst in data]]
    return _frames_by_id([(entry["image_id"], [_results_person(entry)]) for entry in data])


def _read_pose_json(path: Path, fmt: str) -> Detections:
    data = _read_json(path)
    frames = _mmpose_or_results_frames(data)
    person = next((p for people in frames for p in people), None)
    if person is None:
        raise ValueError(f"{path}: no person in any frame")
    layout = _layout_for(path, len(person[0]), fmt)
    if any(len(p[0]) != len(person[0]) for people in frames for p in people):
        raise ValueError(f"{path}: people have different numbers of keypoints")
    meta = (data.get("meta_info") or {}) if isinstance(data, dict) else {}
    size = meta.get("image_size") or meta.get("img_shape")
    if size is not None and "img_shape" in meta and "image_size" not in meta:
        size = (size[1], size[0])  # img_shape is (h, w)
    return Detections(frames, layout, image_size=tuple(size) if size else None, fps=meta.get("fps"))


def _read_coco(path: Path) -> Detections:
    return _read_pose_json(path, "coco")


def _read_halpe(path: Path) -> Detections:
    return _read_pose_json(path, "halpe")


def _read_openpose(path: Path) -> Detections:
    """Folder of ``<name>_<number>_keypoints.json`` -> frames ordered by number."""
    if not path.is_dir():
        raise ValueError(f"{path}: openpose input must be the folder of *_keypoints.json files")
    files = [file for file in path.glob("*_keypoints.json") if file.is_file()]  # no FIFO or device
    if not files:
        raise ValueError(f"{path}: no *_keypoints.json files in this folder")
    entries, counts = [], set()
    for file in files:
        people = []
        for p in _read_json(file)["people"]:
            points = np.asarray(p["pose_keypoints_2d"], dtype=np.float64).reshape(-1, 3)
            counts.add(len(points))
            present = points[:, 2] > 0
            people.append((points, float(points[present, 2].mean()) if present.any() else 0.0))
        entries.append((file.name.removesuffix("_keypoints.json"), people))
    layouts = {25: "body25", 18: "openpose_coco18"}
    if not counts or len(counts) > 1 or counts - layouts.keys():
        raise ValueError(f"{path}: expected 25 (BODY_25) or 18 (COCO-18) keypoints per person, "
                         f"found counts {sorted(counts) or 'none (no people)'}")
    return Detections(_frames_by_id(entries), layouts[counts.pop()])


def _landmark_person(landmarks: list) -> Person:
    """33 MediaPipe landmark dicts {'x', 'y', 'visibility'} -> person (normalised x, y)."""
    points = np.array([[lm["x"], lm["y"], lm.get("visibility", 1.0)] for lm in landmarks], dtype=np.float64)
    return points, float(points[:, 2].mean())


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


def _read_mediapipe(path: Path) -> Detections:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        frames, size, fps = _mediapipe_npz(path)
    elif suffix == ".csv":
        frames, size, fps = _mediapipe_csv(path), None, None
    else:
        data = _read_json(path)
        size, fps = (data.get("image_size"), data.get("fps")) if isinstance(data, dict) else (None, None)
        frames = [_mediapipe_people(f) for f in (data["frames"] if isinstance(data, dict) else data)]
    xy = np.concatenate([p[0][:, :2] for people in frames for p in people] or [np.zeros((0, 2))])
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) and np.median(np.abs(xy)) > 2.0:
        raise ValueError(f"{path}: MediaPipe x, y must be normalised to [0, 1]; these look like pixels "
                         "(use the csv or npz format for pixel coordinates)")
    if any(len(p[0]) != 33 for people in frames for p in people):
        raise ValueError(f"{path}: expected 33 BlazePose landmarks per person")
    return Detections(frames, "blazepose33", tuple(size) if size else None, fps, normalised=True)


def _mediapipe_npz(path: Path) -> tuple[list[list[Person]], tuple | None, Any]:
    """npz 'landmarks' (F, 33, C >= 4: x, y, z, visibility[, presence]) -> frames."""
    npz = read_npz(path, what="keypoint", hint="keypoint npz")
    if "landmarks" not in npz:
        raise ValueError(f"{path}: no 'landmarks' key; expected {EXPECTED['mediapipe']}")
    landmarks = np.asarray(npz["landmarks"], dtype=np.float64)
    size = tuple(np.asarray(npz["image_size"]).reshape(-1)) if "image_size" in npz else None
    fps = npz.get("fps")
    if landmarks.ndim != 3 or landmarks.shape[1] != 33 or landmarks.shape[2] < 4:
        raise ValueError(f"{path}: 'landmarks' must be (F, 33, 4) x, y, z, visibility; got {landmarks.shape}")
    points = landmarks[..., [0, 1, 3]]
    return [[(p, float(np.nanmean(p[:, 2])))] if np.isfinite(p).any() else [] for p in points], size, fps


def _mediapipe_csv(path: Path) -> list[list[Person]]:
    """csv 'frame,landmark,x,y[,z],visibility' (landmark 0-32) -> frames."""
    rows = _read_csv_rows(path, required={"frame", "landmark", "x", "y"})
    table = _long_table(path, rows, "landmark", 33, lambda name: int(name), "visibility")
    return [[(points, float(points[:, 2].mean()))] for points in table]


def _read_npz(path: Path) -> Detections:
    npz = read_npz(path, what="keypoint", hint="keypoint npz")
    if "keypoints" not in npz:
        raise ValueError(f"{path}: missing key 'keypoints'; expected {EXPECTED['npz']}, found {sorted(npz)}")
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
    points = np.concatenate([pixels, conf[..., None]], axis=-1)
    return Detections([[(p, 1.0)] for p in points], "h36m17", image_size=size, fps=fps)


def _read_csv_rows(path: Path, required: set[str]) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = {name.strip().lower() for name in reader.fieldnames or []}
        if not required <= header:
            raise ValueError(f"{path}: csv header {sorted(header)} lacks {sorted(required - header)}")
        return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _long_table(path: Path, rows: list[dict[str, str]], joint_key: str, num_joints: int,
                joint_index: Callable[[str], int], conf_key: str) -> np.ndarray:
    """Long csv rows (one per frame and joint) -> (F, K, 3); frames from min to max, absent rows zero."""
    if not rows:
        raise ValueError(f"{path}: csv has a header but no rows")
    try:
        numbers = [float(r["frame"]) for r in rows]
        joints = [joint_index(r[joint_key]) for r in rows]
        values = [[float(r["x"]), float(r["y"]), float(r[conf_key]) if r.get(conf_key) else 1.0]
                  for r in rows]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: bad csv value ({err})") from err
    bad = next((n for n in numbers if not (abs(n) <= MAX_FRAME_NUMBER and n == int(n))), None)
    if bad is not None:
        raise ValueError(f"{path}: frame number {bad!r} is not a whole number below {MAX_FRAME_NUMBER}")
    if min(joints) < 0 or max(joints) >= num_joints:
        raise ValueError(f"{path}: {joint_key} index out of range 0..{num_joints - 1}")
    frames = np.asarray(numbers, dtype=np.int64)
    distinct = np.unique(frames)  # sorted
    first, last = int(distinct[0]), int(distinct[-1])
    if _is_dense(first, last, len(distinct)):
        index, count = frames - first, last - first + 1
    else:
        logger.warning("%s: frame numbers are sparse (%d..%d for %d frames); using their sorted order", path,
                       first, last, len(distinct))
        index, count = np.searchsorted(distinct, frames), len(distinct)
    out = np.zeros((count, num_joints, 3))
    out[index, joints] = values
    return out


def _h36m_joint_index(name: str) -> int:
    """Human3.6M joint name (case-insensitive) or index -> index."""
    lowered = [j.lower() for j in H36M_17.joints]
    return lowered.index(name.lower()) if name.lower() in lowered else int(name)


def _read_csv(path: Path) -> Detections:
    with open(path, newline="") as fh:
        header = [h.strip().lower() for h in next(csv.reader(fh), [])]
    if "joint" in header:
        rows = _read_csv_rows(path, required={"frame", "joint", "x", "y"})
        points = _long_table(path, rows, "joint", 17, _h36m_joint_index, "confidence")
    else:
        points = _wide_table(path, header)
    return Detections([[(p, 1.0)] for p in points], "h36m17")


def _wide_table(path: Path, header: list[str]) -> np.ndarray:
    """Wide csv (one row per frame: x0,y0,...,x16,y16[,c0,...,c16]) -> (F, 17, 3)."""
    needed = [f"{a}{j}" for j in range(17) for a in "xy"]
    if not set(needed) <= set(header):
        raise ValueError(f"{path}: csv header must hold 'frame,joint,x,y[,confidence]' or "
                         f"'x0,y0,...,x16,y16'; got {header[:6]}...")
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)
    if data.size == 0:
        raise ValueError(f"{path}: csv has a header but no rows")
    col = {name: i for i, name in enumerate(header)}
    xy = data[:, [col[n] for n in needed]].reshape(-1, 17, 2)
    has_conf = all(f"c{j}" in col for j in range(17))
    conf = data[:, [col[f"c{j}"] for j in range(17)]] if has_conf else np.ones(xy.shape[:2])
    return np.concatenate([xy, conf[..., None]], axis=-1)


def _detect_npz(path: Path) -> str | None:
    keys = set(read_npz(path, what="keypoint", hint="keypoint npz"))
    return "npz" if "keypoints" in keys else "mediapipe" if "landmarks" in keys else None


def _detect_csv(path: Path) -> str | None:
    with open(path, newline="") as fh:
        header = {h.strip().lower() for h in next(csv.reader(fh), [])}
    if {"landmark", "visibility"} & header:
        return "mediapipe"
    if {"frame", "joint", "x", "y"} <= header or {"x0", "y0", "x16", "y16"} <= header:
        return "csv"
    return None


READERS: dict[str, Callable[[Path], Detections]] = {
    "coco": _read_coco,
    "halpe": _read_halpe,
    "openpose": _read_openpose,
    "mediapipe": _read_mediapipe,
    "npz": _read_npz,
    "csv": _read_csv,
}
