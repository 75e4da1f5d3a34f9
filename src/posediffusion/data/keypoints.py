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
non-finite, below ``min_confidence`` or more than one image size outside the image are filled over time by
linear interpolation (nearest at the ends) and flagged in ``Keypoints.filled``. The result never contains
NaN. An image size that cannot hold the keypoints (most points outside it), an image size that is not two
positive whole numbers, or an fps that is not a finite positive number is an error.

This module is that common pipeline (mapping tables, person choice, gap filling); the per-tool readers
(file -> people per frame) live in ``keypoint_formats``, whose ``FORMATS`` and ``detect_format`` are
re-exported here.
"""

from __future__ import annotations

import csv
import logging
import math
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
        far_outside: number of joint positions that lay more than one image size outside the image and
            were treated as missing (they are among ``filled``).
    """

    pixels: np.ndarray
    confidence: np.ndarray
    filled: np.ndarray
    image_size: tuple[int, int]
    source_format: str
    fps: float | None = None
    far_outside: int = 0

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
            each frame's list of people (frames with fewer people count as missing; an index that no frame
            has is an error).

    Joint positions more than one image size outside the image (u < -w, u > 2w, v < -h or v > 2h) are
    treated as missing, with a warning; their number is ``Keypoints.far_outside``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown/malformed format, missing or invalid image size, an image size that cannot hold
            the keypoints (more than half of the detected points outside it), an invalid fps, no such
            person, or too little usable data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such keypoint file or folder")
    if not (path.is_file() or path.is_dir()):
        raise ValueError(f"{path}: not a regular file or folder (a device, FIFO or socket)")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in READERS:
        raise ValueError(f"{path}: unknown keypoint format {format!r}; "
                         f"choose from auto, {', '.join(FORMATS)}")
    try:
        det = READERS[fmt](path)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError, OverflowError, OSError,
            csv.Error) as err:
        if isinstance(err, ValueError) and str(err).startswith(str(path)):
            raise  # already a clear message of ours
        raise ValueError(f"{path}: malformed {fmt} file ({err!r}); expected {EXPECTED[fmt]}") from err
    size = _resolve_image_size(path, det.image_size, image_size)
    fps = _check_fps(path, det.fps)
    num_keypoints, table = LAYOUTS[det.layout]
    points = _select_person(path, det.frames, num_keypoints, person)  # (F, K, 3)
    if det.normalised:
        points[..., :2] *= np.asarray(size, dtype=np.float64)
    pixels, confidence = map_to_h36m(points, table, min_confidence)
    valid = confidence >= min_confidence
    far = _far_outside(path, pixels, valid, size, "--image-size" if image_size is not None else None)
    valid &= ~far
    _check_usable(path, valid, min_confidence)
    logger.info("%s: %d frames (%s, %s layout); %.1f%% of joints filled", path, len(pixels), fmt,
                det.layout, 100.0 * (1.0 - valid.mean()))
    return Keypoints(
        pixels=fill_missing(pixels, valid).astype(np.float32),
        confidence=confidence.astype(np.float32),
        filled=~valid,
        image_size=size,
        source_format=fmt,
        fps=fps,
        far_outside=int(far.sum()),
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


def _select_person(path: Path, frames: list[list[Person]], num_keypoints: int,
                   person: int | None) -> np.ndarray:
    """One person per frame -> (F, K, 3); frames without the person are all-zero (missing).

    ``ValueError`` when ``person`` is negative or no frame has that many people.
    """
    most = max((len(people) for people in frames), default=0)
    if person is not None and not 0 <= person < most:
        indices = f"indices 0..{most - 1}" if most else "no person detected at all"
        raise ValueError(f"{path}: --person {person}: no such person; the file has at most {most} "
                         f"person(s) per frame ({indices})")
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


#: Largest image side accepted, pixels (a sanity bound; 16K video is 15,360 wide).
MAX_IMAGE_SIDE = 100_000


def check_image_size(size: Any, source: str) -> tuple[int, int]:
    """``size`` as (width, height) ints: two finite, positive, whole numbers up to ``MAX_IMAGE_SIDE``.

    ``source`` names where the size came from in the ``ValueError`` (a flag, or "<file>: image_size").
    A fractional size (1920.5) is an error, not truncated.
    """
    try:
        values = [float(v) for v in np.asarray(size, dtype=object).reshape(-1)]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 or not all(math.isfinite(v) and 0 < v <= MAX_IMAGE_SIDE and v == int(v)
                                   for v in values):
        shown = " ".join(str(v) for v in np.asarray(size, dtype=object).reshape(-1))
        raise ValueError(f"{source} {shown}: the image size must be two positive whole numbers (width "
                         f"height, at most {MAX_IMAGE_SIDE} px)")
    return int(values[0]), int(values[1])


def _resolve_image_size(path: Path, from_file: Any, given: Any) -> tuple[int, int]:
    """The (width, height) to use: the caller's, else the file's; ``ValueError`` if neither or invalid."""
    stored = check_image_size(from_file, f"{path}: image_size") if from_file is not None else None
    if given is None:
        if stored is None:
            raise ValueError(f"{path}: the image size is not stored in this file; pass it "
                             "(image_size=(W, H), or --image-size W H)")
        return stored
    size = check_image_size(given, "--image-size")
    if stored is not None and size != stored:
        logger.warning("%s: image size %s given overrides %s stored in the file", path, size, stored)
    return size


def _check_fps(path: Path, fps: Any) -> float | None:
    """The file's frame rate as a float (``None`` when absent); ``ValueError`` unless finite and > 0."""
    if fps is None:
        return None
    try:
        value = float(np.asarray(fps).reshape(-1)[0]) if np.size(fps) == 1 else math.nan
        shown = str(value) if np.size(fps) == 1 else str(np.asarray(fps).tolist())
    except (TypeError, ValueError):
        value, shown = math.nan, repr(fps)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{path}: fps {shown} in the file must be a finite positive number")
    return value


def _far_outside(path: Path, pixels: np.ndarray, valid: np.ndarray, size: tuple[int, int],
                 flag: str | None) -> np.ndarray:
    """(F, 17) bool: detected points more than one image size outside the image (to be treated as missing).

    ``ValueError`` naming the image size's source when more than half of the detected points lie outside
    the image: the size cannot be the video's (or the coordinates are not its pixels).
    """
    w, h = size
    u, v = pixels[..., 0], pixels[..., 1]
    detected = int(valid.sum())
    outside = valid & ~((u >= 0) & (u <= w) & (v >= 0) & (v <= h))
    if detected and outside.sum() > detected / 2:
        source = f"{flag} {w} {h}" if flag else f"image_size {w} {h} stored in the file"
        extent = float(np.abs(pixels[valid]).max())
        share = 100.0 * outside.sum() / detected
        raise ValueError(f"{path}: {source} cannot hold the keypoints: {share:.0f}% of the detected points "
                         f"lie outside a {w}x{h} image (coordinates up to {extent:.4g} px); give the video's "
                         "size in pixels")
    far = valid & ((u < -w) | (u > 2 * w) | (v < -h) | (v > 2 * h))
    if far.any():
        logger.warning("%s: %d joint position(s) lie more than one image size outside the %dx%d image; "
                       "treated as missing and filled", path, int(far.sum()), w, h)
    return far
