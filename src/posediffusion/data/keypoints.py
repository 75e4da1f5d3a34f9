"""Users' 2D keypoint files -> Human3.6M-17 pixel tracks ready for lifting.

Supported formats (``docs/in-the-wild.md`` has the tables):

* ``coco``: COCO-17 from MMPose/RTMPose/ViTPose (``predictions`` JSON, ``[{"frame_id", "instances"}]``,
  ``{"meta_info", "instance_info"}``) or Detectron2/AlphaPose COCO-results JSON
  (``[{"image_id", "keypoints": [x, y, v] * 17, "score"}]``); COCO-WholeBody-133 uses its first 17 points.
* ``halpe``: AlphaPose Halpe-26 results JSON (same layouts, 26 keypoints).
* ``openpose``: a folder of per-frame ``*_keypoints.json`` files (BODY_25, or the older COCO-18).
* ``mediapipe``: BlazePose-33 landmarks (x, y normalised to [0, 1]) as JSON, npz or csv.
* ``npz``: ``keypoints`` (F, 17, 2) pixels in Human3.6M order, ``image_size`` (2,), optional ``confidence``.
* ``csv``: long ``frame,joint,x,y[,confidence]`` or wide ``x0,y0,...,x16,y16[,c0,...,c16]``, pixels.

Every format goes through one pipeline: people per frame in the source layout -> one person per frame
(highest score, or a fixed index) -> Human3.6M-17 via a mapping table -> joints that are missing, at (0, 0),
non-finite or below ``min_confidence`` are filled over time by linear interpolation (nearest at the ends)
and flagged in ``Keypoints.filled``. The result never contains NaN.
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

from posediffusion.io_utils import save_npz_atomic
from posediffusion.skeleton import H36M_17

logger = logging.getLogger(__name__)

#: A mapping table: for each of the 17 Human3.6M joints, alternatives in order of preference; each
#: alternative is a tuple of source keypoint indices whose mean is the joint. The first alternative whose
#: sources are all confident in a frame is used.
MappingTable = tuple[tuple[tuple[int, ...], ...], ...]

COCO17_TO_H36M: MappingTable = (
    ((11, 12),),  # Hip = mean of hips
    ((12,),), ((14,),), ((16,),),  # RHip, RKnee, RAnkle
    ((11,),), ((13,),), ((15,),),  # LHip, LKnee, LAnkle
    ((11, 12, 5, 6),),  # Spine = mean of pelvis and thorax
    ((5, 6),),  # Thorax = mean of shoulders
    ((0,),),  # Neck/Nose = nose
    ((1, 2), (3, 4)),  # Head = mean of the eyes, else of the ears
    ((5,),), ((7,),), ((9,),),  # LShoulder, LElbow, LWrist
    ((6,),), ((8,),), ((10,),),  # RShoulder, RElbow, RWrist
)

HALPE26_TO_H36M: MappingTable = (
    ((19,),),  # Hip = Halpe hip
    ((12,),), ((14,),), ((16,),),
    ((11,),), ((13,),), ((15,),),
    ((19, 18),),  # Spine = mean of hip and neck
    ((18,),),  # Thorax = Halpe neck
    ((0,),),  # Neck/Nose = nose
    ((17,),),  # Head = Halpe head (top)
    ((5,),), ((7,),), ((9,),),
    ((6,),), ((8,),), ((10,),),
)

BODY25_TO_H36M: MappingTable = (
    ((8,),),  # Hip = MidHip
    ((9,),), ((10,),), ((11,),),
    ((12,),), ((13,),), ((14,),),
    ((8, 1),),  # Spine = mean of MidHip and Neck
    ((1,),),  # Thorax = Neck
    ((0,),),  # Neck/Nose = Nose
    ((15, 16), (17, 18)),  # Head = mean of the eyes, else of the ears
    ((5,),), ((6,),), ((7,),),
    ((2,),), ((3,),), ((4,),),
)

OPENPOSE_COCO18_TO_H36M: MappingTable = (
    ((8, 11),),  # Hip = mean of hips
    ((8,),), ((9,),), ((10,),),
    ((11,),), ((12,),), ((13,),),
    ((8, 11, 1),),  # Spine = mean of pelvis and neck (pelvis weighted as one point)
    ((1,),),  # Thorax = Neck
    ((0,),),
    ((14, 15), (16, 17)),
    ((5,),), ((6,),), ((7,),),
    ((2,),), ((3,),), ((4,),),
)

BLAZEPOSE33_TO_H36M: MappingTable = (
    ((23, 24),),  # Hip = mean of hips
    ((24,),), ((26,),), ((28,),),
    ((23,),), ((25,),), ((27,),),
    ((23, 24, 11, 12),),  # Spine = mean of pelvis and thorax
    ((11, 12),),  # Thorax = mean of shoulders
    ((0,),),  # Neck/Nose = nose
    ((2, 5), (7, 8)),  # Head = mean of the eyes, else of the ears
    ((11,),), ((13,),), ((15,),),
    ((12,),), ((14,),), ((16,),),
)

H36M17_IDENTITY: MappingTable = tuple(((j,),) for j in range(17))

#: source layout -> (number of keypoints, mapping table)
LAYOUTS: dict[str, tuple[int, MappingTable]] = {
    "coco17": (17, COCO17_TO_H36M),
    "coco_wholebody133": (133, COCO17_TO_H36M),
    "halpe26": (26, HALPE26_TO_H36M),
    "body25": (25, BODY25_TO_H36M),
    "openpose_coco18": (18, OPENPOSE_COCO18_TO_H36M),
    "blazepose33": (33, BLAZEPOSE33_TO_H36M),
    "h36m17": (17, H36M17_IDENTITY),
}

#: format -> what a file of that format must look like (used in error messages).
EXPECTED = {
    "coco": "MMPose predictions JSON (frames of instances with 'keypoints' [[x, y]] and 'keypoint_scores') "
            "or COCO-results JSON ([{'image_id', 'keypoints': [x, y, v] * 17, 'score'}])",
    "halpe": "AlphaPose Halpe-26 results JSON ([{'image_id', 'keypoints': [x, y, s] * 26, 'score'}])",
    "openpose": "a folder of OpenPose '*_keypoints.json' files ({'people': [{'pose_keypoints_2d': ...}]})",
    "mediapipe": "BlazePose-33 landmarks with normalised x, y and visibility (JSON, npz 'landmarks' "
                 "(F, 33, 4), or csv 'frame,landmark,x,y[,z],visibility')",
    "npz": "npz with 'keypoints' (F, 17, 2) pixels in Human3.6M order and 'image_size' (2,)",
    "csv": "csv with header 'frame,joint,x,y[,confidence]' or 'x0,y0,...,x16,y16[,c0,...,c16]'",
}
FORMATS = tuple(EXPECTED)

Person = tuple[np.ndarray, float]  # ((K, 3) x, y, confidence; person score)


@dataclass
class Keypoints:
    """A 2D keypoint track of one person in Human3.6M-17 order.

    Attributes:
        pixels: (F, 17, 2) float32 pixel coordinates (u right, v down), NaN-free (gaps filled).
        confidence: (F, 17) float32 detector confidence of each joint as read (0 where nothing was detected).
        filled: (F, 17) bool, True where the joint was missing or below ``min_confidence`` and was filled.
        image_size: (width, height) in pixels.
        source_format: one of ``FORMATS``.
        fps: frame rate if the file states it, else ``None``.
    """

    pixels: np.ndarray
    confidence: np.ndarray
    filled: np.ndarray
    image_size: tuple[int, int]
    source_format: str
    fps: float | None = None

    @property
    def num_frames(self) -> int:
        return len(self.pixels)

    def to_normalised(self) -> np.ndarray:
        """(F, 17, 2) float32 normalised screen coordinates (``camera.normalize_screen``)."""
        from posediffusion.camera import normalize_screen

        return normalize_screen(self.pixels, *self.image_size).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the plain npz layout (see :func:`save_keypoints_npz`)."""
        save_keypoints_npz(path, self.pixels, self.image_size, self.confidence, self.fps)


@dataclass
class _Detections:
    """What a reader found: people per frame in a source layout (pixels unless ``normalised``)."""

    frames: list[list[Person]]
    layout: str
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    normalised: bool = False


# ---------------------------------------------------------------------------------------------------------
# Public entry points


def load_keypoints(
    path: str | Path,
    format: str = "auto",
    image_size: tuple[int, int] | None = None,
    min_confidence: float = 0.3,
    person: int | None = None,
) -> Keypoints:
    """Read a 2D keypoint file (or OpenPose folder) and return one person's Human3.6M-17 track.

    Args:
        path: the file, or the folder of OpenPose ``*_keypoints.json`` files.
        format: one of ``FORMATS`` or ``"auto"`` (by extension and content).
        image_size: (width, height) pixels; required unless the file stores it (npz, MMPose meta,
            MediaPipe JSON wrapper). Overrides the file's value (with a warning) when both differ.
        min_confidence: joints below this confidence count as missing and are filled.
        person: ``None`` takes the highest-scoring person in every frame; an integer takes that index in
            each frame's list of people (frames with fewer people count as missing).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown/malformed format, missing image size, or too little usable data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such keypoint file or folder")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in READERS:
        raise ValueError(f"{path}: unknown keypoint format {format!r}; "
                         f"choose from auto, {', '.join(FORMATS)}")
    try:
        det = READERS[fmt](path)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith(str(path)):
            raise  # already a clear message of ours
        raise ValueError(f"{path}: malformed {fmt} file ({err!r}); expected {EXPECTED[fmt]}") from err
    size = _resolve_image_size(path, det.image_size, image_size)
    num_keypoints, table = LAYOUTS[det.layout]
    points = _select_person(det.frames, num_keypoints, person)  # (F, K, 3)
    if det.normalised:
        points[..., :2] *= np.asarray(size, dtype=np.float64)
    pixels, confidence = map_to_h36m(points, table, min_confidence)
    valid = confidence >= min_confidence
    _check_usable(path, valid, min_confidence)
    logger.info("%s: %d frames (%s, %s layout); %.1f%% of joints filled", path, len(pixels), fmt,
                det.layout, 100.0 * (1.0 - valid.mean()))
    return Keypoints(
        pixels=fill_missing(pixels, valid).astype(np.float32),
        confidence=confidence.astype(np.float32),
        filled=~valid,
        image_size=size,
        source_format=fmt,
        fps=det.fps,
    )


def save_keypoints_npz(
    path: str | Path,
    pixels: np.ndarray,
    image_size: tuple[int, int],
    confidence: np.ndarray | None = None,
    fps: float | None = None,
) -> None:
    """Atomically write the plain ``npz`` layout that :func:`load_keypoints` reads.

    Args:
        pixels: (F, 17, 2) pixels, Human3.6M order (NaN marks a missing joint).
        image_size: (width, height) pixels.
        confidence: optional (F, 17).
        fps: optional frame rate.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[1:] != (17, 2):
        raise ValueError(f"{path}: keypoints must be (F, 17, 2), got {pixels.shape}")
    arrays: dict[str, Any] = {"keypoints": pixels, "image_size": np.asarray(image_size, dtype=np.int64)}
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float32)
        if confidence.shape != pixels.shape[:2]:
            raise ValueError(f"{path}: confidence must be {pixels.shape[:2]}, got {confidence.shape}")
        arrays["confidence"] = confidence
    if fps is not None:
        arrays["fps"] = np.float64(fps)
    save_npz_atomic(path, **arrays)


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its extension and content; ``ValueError`` if none fits."""
    path = Path(path)
    guess: str | None = None
    if path.is_dir():
        guess = "openpose" if any(path.glob("*_keypoints.json")) else None
    elif path.suffix.lower() == ".npz":
        guess = _detect_npz(path)
    elif path.suffix.lower() == ".csv":
        guess = _detect_csv(path)
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
# Mapping, person choice, gap filling


def map_to_h36m(points: np.ndarray, table: MappingTable,
                min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(F, K, 3) source points (x, y, confidence) -> (F, 17, 2) pixels and (F, 17) confidence.

    A derived joint is the mean of its sources and its confidence the minimum of theirs. Source points
    that are non-finite or exactly at (0, 0) (OpenPose's "not found") count as confidence 0.
    """
    xy, conf = points[..., :2].copy(), points[..., 2].copy()
    missing = ~np.isfinite(points).all(axis=-1) | (xy == 0).all(axis=-1)
    conf[missing] = 0.0
    xy[missing] = 0.0
    pixels = np.zeros((len(points), len(table), 2))
    confidence = np.zeros((len(points), len(table)))
    for j, alternatives in enumerate(table):
        for k, sources in enumerate(alternatives):
            alt_xy = xy[:, list(sources)].mean(axis=1)  # (F, 2)
            alt_conf = conf[:, list(sources)].min(axis=1)  # (F,)
            use = np.ones(len(points), bool) if k == 0 else (
                (confidence[:, j] < min_confidence) & (alt_conf >= min_confidence))
            pixels[use, j], confidence[use, j] = alt_xy[use], alt_conf[use]
    return pixels, confidence


def fill_missing(pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill joints where ``valid`` is False: linear interpolation over time, nearest value at the ends.

    Args:
        pixels: (F, J, 2); values at invalid entries are ignored.
        valid: (F, J) bool; every joint needs at least one valid frame.
    Returns:
        (F, J, 2) float64 without NaN.
    """
    frames = np.arange(len(pixels))
    out = np.array(pixels, dtype=np.float64)
    for j in range(pixels.shape[1]):
        ok = valid[:, j]
        for d in range(2):
            out[:, j, d] = np.interp(frames, frames[ok], out[ok, j, d])
    return out


def _select_person(frames: list[list[Person]], num_keypoints: int, person: int | None) -> np.ndarray:
    """One person per frame -> (F, K, 3); frames without the person are all-zero (missing)."""
    out = np.zeros((len(frames), num_keypoints, 3))
    crowded = 0
    for f, people in enumerate(frames):
        crowded += len(people) > 1
        if person is None and people:
            out[f] = max(people, key=lambda p: p[1])[0]
        elif person is not None and 0 <= person < len(people):
            out[f] = people[person][0]
    if crowded:
        choice = "the highest-scoring person" if person is None else f"person index {person}"
        logger.info("%d frames show several people; taking %s in each", crowded, choice)
    return out


def _check_usable(path: Path, valid: np.ndarray, min_confidence: float) -> None:
    """Raise ``ValueError`` unless >= 2 frames have detections and every joint is seen at least once."""
    if not valid.any():
        raise ValueError(f"{path}: no keypoint with confidence >= {min_confidence} "
                         "(all zero, NaN, missing or low-confidence)")
    frames_with_data = int(valid.any(axis=1).sum())
    if frames_with_data < 2:
        raise ValueError(f"{path}: only {frames_with_data} frame with usable keypoints; at least 2 needed")
    never = [H36M_17.joints[j] for j in np.flatnonzero(~valid.any(axis=0))]
    if never:
        raise ValueError(f"{path}: joint(s) {', '.join(never)} missing (or below confidence "
                         f"{min_confidence}) in every frame; cannot fill them")


def _resolve_image_size(path: Path, from_file: tuple[int, int] | None,
                        given: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) to use: the caller's, else the file's; ``ValueError`` if neither or invalid."""
    if given is not None and from_file is not None and tuple(given) != tuple(from_file):
        logger.warning("%s: image size %s given overrides %s stored in the file", path, given, from_file)
    size = given if given is not None else from_file
    if size is None:
        raise ValueError(f"{path}: the image size is not stored in this file; pass it "
                         "(image_size=(W, H), or --image-size W H)")
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{path}: image size must be two positive numbers (width, height), got {size}")
    return int(size[0]), int(size[1])


# ---------------------------------------------------------------------------------------------------------
# Frame ordering helpers


def _frame_number(frame_id: Any) -> int | None:
    """Frame number from an int id or the last run of digits in a name ("frame_0012.jpg" -> 12)."""
    if isinstance(frame_id, (int, np.integer)) and not isinstance(frame_id, bool):
        return int(frame_id)
    digits = re.findall(r"\d+", str(frame_id)) if isinstance(frame_id, str) else []
    return int(digits[-1]) if digits else None


def _frames_by_id(entries: list[tuple[Any, list[Person]]]) -> list[list[Person]]:
    """Group people by frame id. Numeric ids give a dense frame range (gaps become empty frames)."""
    numbers = [_frame_number(frame_id) for frame_id, _ in entries]
    if entries and all(n is not None for n in numbers):
        first, last = min(numbers), max(numbers)
        if last - first + 1 <= 4 * len(set(numbers)) + 100:
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
# Readers: path -> _Detections


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read JSON ({err})") from err


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


def _read_pose_json(path: Path, fmt: str) -> _Detections:
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
    return _Detections(frames, layout, image_size=tuple(size) if size else None, fps=meta.get("fps"))


def _read_coco(path: Path) -> _Detections:
    return _read_pose_json(path, "coco")


def _read_halpe(path: Path) -> _Detections:
    return _read_pose_json(path, "halpe")


def _read_openpose(path: Path) -> _Detections:
    """Folder of ``<name>_<number>_keypoints.json`` -> frames ordered by number."""
    if not path.is_dir():
        raise ValueError(f"{path}: openpose input must be the folder of *_keypoints.json files")
    files = list(path.glob("*_keypoints.json"))
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
    return _Detections(_frames_by_id(entries), layouts[counts.pop()])


def _landmark_person(landmarks: list) -> Person:
    """33 MediaPipe landmark dicts {'x', 'y', 'visibility'} -> person (normalised x, y)."""
    points = np.array([[lm["x"], lm["y"], lm.get("visibility", 1.0)] for lm in landmarks], dtype=np.float64)
    return points, float(points[:, 2].mean())


def _mediapipe_people(frame: Any) -> list[Person]:
    """One MediaPipe JSON frame (several accepted spellings) -> people."""
    if not frame:
        return []
    if isinstance(frame, dict):
        inner = next(frame[k] for k in ("pose_landmarks", "landmarks", "landmark") if k in frame)
        return _mediapipe_people(inner)
    if isinstance(frame[0], dict) and "x" not in frame[0]:  # [{'landmark': [...]}, ...]
        return [p for item in frame for p in _mediapipe_people(item)]
    if isinstance(frame[0], list):  # Tasks API: a list of people
        return [_landmark_person(p) for p in frame if p]
    return [_landmark_person(frame)]


def _read_mediapipe(path: Path) -> _Detections:
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
    return _Detections(frames, "blazepose33", tuple(size) if size else None, fps, normalised=True)


def _mediapipe_npz(path: Path) -> tuple[list[list[Person]], tuple | None, float | None]:
    """npz 'landmarks' (F, 33, C >= 4: x, y, z, visibility[, presence]) -> frames."""
    with np.load(path) as npz:
        landmarks = np.asarray(npz["landmarks"], dtype=np.float64)
        size = tuple(int(v) for v in npz["image_size"]) if "image_size" in npz else None
        fps = float(npz["fps"]) if "fps" in npz else None
    if landmarks.ndim != 3 or landmarks.shape[1] != 33 or landmarks.shape[2] < 4:
        raise ValueError(f"{path}: 'landmarks' must be (F, 33, 4) x, y, z, visibility; got {landmarks.shape}")
    points = landmarks[..., [0, 1, 3]]
    return [[(p, float(np.nanmean(p[:, 2])))] if np.isfinite(p).any() else [] for p in points], size, fps


def _mediapipe_csv(path: Path) -> list[list[Person]]:
    """csv 'frame,landmark,x,y[,z],visibility' (landmark 0-32) -> frames."""
    rows = _read_csv_rows(path, required={"frame", "landmark", "x", "y"})
    table = _long_table(path, rows, "landmark", 33, lambda name: int(name), "visibility")
    return [[(points, float(points[:, 2].mean()))] for points in table]


def _read_npz(path: Path) -> _Detections:
    with np.load(path) as npz:
        if "keypoints" not in npz or "image_size" not in npz:
            raise ValueError(f"{path}: missing key(s); expected {EXPECTED['npz']}, found {sorted(npz.files)}")
        pixels = np.asarray(npz["keypoints"], dtype=np.float64)
        size = tuple(int(v) for v in np.asarray(npz["image_size"]).reshape(-1))
        conf = np.asarray(npz["confidence"], dtype=np.float64) if "confidence" in npz else None
        fps = float(npz["fps"]) if "fps" in npz else None
    if pixels.ndim != 3 or pixels.shape[1:] != (17, 2):
        raise ValueError(f"{path}: 'keypoints' must be (F, 17, 2) pixels, got {pixels.shape}")
    if conf is None:
        conf = np.ones(pixels.shape[:2])
    elif conf.shape != pixels.shape[:2]:
        raise ValueError(f"{path}: 'confidence' must be {pixels.shape[:2]}, got {conf.shape}")
    points = np.concatenate([pixels, conf[..., None]], axis=-1)
    return _Detections([[(p, 1.0)] for p in points], "h36m17", image_size=size, fps=fps)


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
        frames = [int(float(r["frame"])) for r in rows]
        joints = [joint_index(r[joint_key]) for r in rows]
        values = [[float(r["x"]), float(r["y"]), float(r[conf_key]) if r.get(conf_key) else 1.0]
                  for r in rows]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: bad csv value ({err})") from err
    if min(joints) < 0 or max(joints) >= num_joints:
        raise ValueError(f"{path}: {joint_key} index out of range 0..{num_joints - 1}")
    first = min(frames)
    out = np.zeros((max(frames) - first + 1, num_joints, 3))
    out[np.asarray(frames) - first, joints] = values
    return out


def _h36m_joint_index(name: str) -> int:
    """Human3.6M joint name (case-insensitive) or index -> index."""
    lowered = [j.lower() for j in H36M_17.joints]
    return lowered.index(name.lower()) if name.lower() in lowered else int(name)


def _read_csv(path: Path) -> _Detections:
    with open(path, newline="") as fh:
        header = [h.strip().lower() for h in next(csv.reader(fh), [])]
    if "joint" in header:
        rows = _read_csv_rows(path, required={"frame", "joint", "x", "y"})
        points = _long_table(path, rows, "joint", 17, _h36m_joint_index, "confidence")
    else:
        points = _wide_table(path, header)
    return _Detections([[(p, 1.0)] for p in points], "h36m17")


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
    try:
        with np.load(path) as npz:
            keys = set(npz.files)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read npz ({err})") from err
    return "npz" if "keypoints" in keys else "mediapipe" if "landmarks" in keys else None


def _detect_csv(path: Path) -> str | None:
    with open(path, newline="") as fh:
        header = {h.strip().lower() for h in next(csv.reader(fh), [])}
    if {"landmark", "visibility"} & header:
        return "mediapipe"
    if {"frame", "joint", "x", "y"} <= header or {"x0", "y0", "x16", "y16"} <= header:
        return "csv"
    return None


READERS: dict[str, Callable[[Path], _Detections]] = {
    "coco": _read_coco,
    "halpe": _read_halpe,
    "openpose": _read_openpose,
    "mediapipe": _read_mediapipe,
    "npz": _read_npz,
    "csv": _read_csv,
}
