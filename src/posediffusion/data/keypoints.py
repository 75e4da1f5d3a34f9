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

This module is that common pipeline (mapping tables, person choice, gap filling); the per-tool readers
(file -> people per frame) live in ``keypoint_formats``, whose ``FORMATS`` and ``detect_format`` are
re-exported here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.camera import normalize_screen
from posediffusion.data.keypoint_formats import EXPECTED, FORMATS, READERS, Person, detect_format
from posediffusion.io_utils import save_npz_atomic
from posediffusion.skeleton import H36M_17

__all__ = ["FORMATS", "LAYOUTS", "Keypoints", "detect_format", "fill_missing", "load_keypoints",
           "map_to_h36m", "save_keypoints_npz"]

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
        return normalize_screen(self.pixels, *self.image_size).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the plain npz layout (see :func:`save_keypoints_npz`)."""
        save_keypoints_npz(path, self.pixels, self.image_size, self.confidence, self.fps)


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
