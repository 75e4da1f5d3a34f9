"""Users' 2D keypoint files -> Human3.6M-17 pixel tracks ready for lifting.

Supported formats (``docs/in-the-wild.md`` has the tables):

* ``coco``: COCO-17 from MMPose/RTMPose/ViTPose (``predictions`` JSON, ``[{"frame_id", "instances"}]``,
  ``{"meta_info", "instance_info"}``, a folder of one JSON per image), Detectron2/AlphaPose COCO-results JSON
  (``[{"image_id", "keypoints": [x, y, v] * 17, "score"}]``), COCO keypoint annotations or PoseFlow JSON;
  COCO-WholeBody-133 uses its first 17 points.
* ``halpe``: AlphaPose Halpe-26 or Halpe-136 results JSON (same layouts, 26 or 136 keypoints).
* ``openpose``: a folder of per-frame ``*_keypoints.json`` files (BODY_25, or the older COCO-18).
* ``mediapipe``: BlazePose-33 landmarks (x, y normalised to [0, 1]) as JSON, npz or csv (long or wide).
* ``npz``: ``keypoints`` (F, 17, 2) pixels in Human3.6M order, ``image_size`` (2,), optional ``confidence``,
  ``fps``, ``frame_ids``.
* ``csv``: long ``frame,joint,x,y[,confidence]`` or wide ``x0,y0,...,x16,y16[,c0,...,c16]``, pixels.
* ``videopose3d``: VideoPose3D's ``data_2d_custom_*.npz``; ``detectron2``: the Detectron2 npz VideoPose3D's
  infer_video_d2.py writes.

Every format goes through one pipeline: people per frame in the source layout -> Human3.6M-17 via a
mapping table (every person) -> identity tracks (``data/tracking.py``: the file's track ids, else
association across frames) -> one track (``person=`` a track id, by default the track seen in most frames;
:func:`load_tracks` gives all) -> joints that are missing, at (0, 0), non-finite, below ``min_confidence``
(default per tool: ``TOOL_MIN_CONFIDENCE``) or more than one image size outside the image are filled over
time by linear interpolation (nearest at the ends) and flagged in ``Keypoints.filled``; joints never seen
in the clip are placed from a body prior (``data/body_prior.py``) and flagged in ``Keypoints.inferred``.
The result never contains NaN. An image size that cannot hold the keypoints (most points outside it), an
image size that is not two positive whole numbers, or an fps that is not a finite positive number is an
error.

This module is that common pipeline (mapping tables, track choice, gap filling); the per-tool readers
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
from posediffusion.data.body_prior import body_scale, place_never_seen
from posediffusion.data.keypoint_formats import EXPECTED, FORMATS, READERS, detect_format
from posediffusion.data.tracking import Tracks, cut_note, track_detections, track_notes
from posediffusion.io_utils import save_npz_atomic
from posediffusion.skeleton import H36M_17

__all__ = ["FORMATS", "LAYOUTS", "TOOL_MIN_CONFIDENCE", "Keypoints", "detect_format", "fill_missing",
           "load_keypoints", "load_tracks", "map_to_h36m", "save_keypoints_npz"]

logger = logging.getLogger(__name__)

#: Confidence below which a joint counts as missing, unless the caller or the tool (Detectron2) says else.
DEFAULT_MIN_CONFIDENCE = 0.3
#: The tool's own threshold for drawing a keypoint, where it differs from 0.3 (``Detections.tool`` ->
#: threshold): OpenPose's ``--render_threshold`` 0.05, MediaPipe's visibility 0.5. A reader's
#: ``Detections.min_confidence`` (Detectron2: 0.05) comes first.
TOOL_MIN_CONFIDENCE = {"OpenPose": 0.05, "MediaPipe": 0.5}

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
    "halpe136": (136, HALPE26_TO_H36M),  # Halpe-136 starts with the 26 body points of Halpe-26
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
        filled: (F, 17) bool, True where the joint was missing or below ``min_confidence`` and was filled
            (not a measurement; includes ``inferred``).
        image_size: (width, height) in pixels.
        source_format: one of ``FORMATS``.
        fps: frame rate if the file states it, else ``None``.
        far_outside: number of joint positions that lay more than one image size outside the image and
            were treated as missing (they are among ``filled``).
        frame_ids: (F,) int64, the input's frame number of each frame (frame i of the track is frame
            ``frame_ids[i]`` of the file: a clip whose first detection is in frame 10 starts at 10);
            ``None`` means 0, 1, ...
        min_confidence: the threshold used (the caller's, else the tool's own, else 0.3).
        inferred: (F, 17) bool, True for joints never seen in the clip, placed from the body prior
            (``data/body_prior.py``): a guess, not a measurement. ``None`` means none.
        track_id: which track of the file this is (``data/tracking.py``: the file's id, else numbered by
            first appearance).
        tracks: how many tracks the file has.
    """

    pixels: np.ndarray
    confidence: np.ndarray
    filled: np.ndarray
    image_size: tuple[int, int]
    source_format: str
    fps: float | None = None
    far_outside: int = 0
    frame_ids: np.ndarray | None = None
    min_confidence: float = 0.3
    inferred: np.ndarray | None = None
    track_id: int = 0
    tracks: int = 1

    @property
    def num_frames(self) -> int:
        return len(self.pixels)

    @property
    def first_frame(self) -> int:
        """The input's frame number of the first frame (0 when the file numbers none)."""
        return int(self.frame_ids[0]) if self.frame_ids is not None and len(self.frame_ids) else 0

    def to_normalised(self) -> np.ndarray:
        """(F, 17, 2) float32 normalised screen coordinates (``camera.normalize_screen``)."""
        return normalize_screen(self.pixels, *self.image_size).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the plain npz layout (see :func:`save_keypoints_npz`)."""
        save_keypoints_npz(path, self.pixels, self.image_size, self.confidence, self.fps, self.frame_ids)


# ---------------------------------------------------------------------------------------------------------
# Public entry points


def load_keypoints(
    path: str | Path,
    format: str = "auto",
    image_size: tuple[int, int] | None = None,
    min_confidence: float | None = None,
    person: int | None = None,
) -> Keypoints:
    """Read a 2D keypoint file (or OpenPose folder) and return one person's Human3.6M-17 track.

    Args:
        path: the file, or the folder of OpenPose ``*_keypoints.json`` files.
        format: one of ``FORMATS`` or ``"auto"`` (by extension and content).
        image_size: (width, height) pixels; required unless the file stores it (npz, MMPose meta,
            MediaPipe JSON wrapper). Overrides the file's value (with a warning) when both differ.
        min_confidence: joints below this confidence count as missing and are filled. ``None``: the
            tool's own threshold where its scores are on another scale (Detectron2 0.05, OpenPose 0.05,
            MediaPipe 0.5: ``TOOL_MIN_CONFIDENCE``), else 0.3. NaN points and points at exactly (0, 0) are
            missing whatever the threshold.
        person: a track id (``data/tracking.py``: the file's ids when it has them, else 0, 1, ... in order
            of first appearance, left to right within a frame); ``None`` takes the track seen in most
            frames. Frames without that track count as missing.

    Joint positions more than one image size outside the image (u < -w, u > 2w, v < -h or v > 2h) are
    treated as missing, with a warning; their number is ``Keypoints.far_outside``. Joints never seen in
    the clip are placed from a body prior aligned to the visible joints (``Keypoints.inferred``, a warning).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown/malformed format, missing or invalid image size, an image size that cannot hold
            the keypoints (more than half of the detected points outside it), an invalid fps, no such
            track, too little usable data, or too little of the body seen to place the never-seen joints.
    """
    people = _read_people(Path(path), format, image_size, min_confidence)
    return _track_keypoints(people, _choose_track(people, person))


def load_tracks(
    path: str | Path,
    format: str = "auto",
    image_size: tuple[int, int] | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
) -> list[Keypoints]:
    """Every person's track in a file (arguments as :func:`load_keypoints`), ordered by track id.

    Tracks seen in fewer than ``min_frames`` frames (default: 10, or half the clip when shorter) or that
    cannot be lifted (one usable frame; too little of the body seen) are skipped with a warning;
    ``ValueError`` when no track is left.
    """
    people = _read_people(Path(path), format, image_size, min_confidence)
    counts = people.tracks.counts()
    if min_frames is None:
        min_frames = max(2, min(10, people.num_frames // 2))
    out, skipped = [], []
    for track in sorted(counts):
        try:
            if counts[track] < min_frames:
                raise ValueError(f"seen in only {counts[track]} frame(s)")
            out.append(_track_keypoints(people, track, quiet=True))
        except ValueError as err:
            skipped.append(f"{track} ({str(err).removeprefix(f'{people.path}: ')})")
    if skipped:
        logger.warning("%s: skipping track(s) %s", people.path, "; ".join(skipped))
    if not out:
        raise ValueError(f"{people.path}: no track can be lifted (min_frames {min_frames}): "
                         f"{'; '.join(skipped)}")
    return out


def _read_people(path: Path, format: str, image_size: Any, min_confidence: float | None) -> _People:
    """Read ``path``, map every person to Human3.6M-17 and track them (see :func:`load_keypoints`)."""
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
    if min_confidence is None:
        tool_threshold = det.min_confidence if det.min_confidence is not None else TOOL_MIN_CONFIDENCE.get(
            det.tool)
        min_confidence = DEFAULT_MIN_CONFIDENCE if tool_threshold is None else tool_threshold
        if tool_threshold is not None:
            logger.info("%s: %s keypoint scores: a joint counts as detected from %.2f (its own threshold)",
                        path, det.tool, min_confidence)
    size = _resolve_image_size(path, det.image_size, image_size)
    fps = _check_fps(path, det.fps)
    _, table = LAYOUTS[det.layout]
    used = 1 + max(i for alternatives in table for sources in alternatives for i in sources)
    rows = [(f, p) for f, people in enumerate(det.frames) for p in people]
    points = np.zeros((len(rows), used, 3))  # every person of every frame, the points the table reads
    for r, (_, p) in enumerate(rows):
        points[r] = np.asarray(p[0], dtype=np.float64)[:used]
    if det.normalised:
        points[..., :2] *= np.asarray(size, dtype=np.float64)
    pixels, confidence = map_to_h36m(points, table, min_confidence)
    valid = np.isfinite(pixels).all(axis=-1) & (confidence >= min_confidence)
    far = _far_outside(path, pixels, valid, size, "--image-size" if image_size is not None else None)
    valid &= ~far
    if not valid.any():
        raise ValueError(f"{path}: no keypoint with confidence >= {min_confidence} "
                         "(all zero, NaN, missing or low-confidence)")
    people = _People(path=path, fmt=fmt, layout=det.layout, size=size, fps=fps,
                     min_confidence=float(min_confidence), num_frames=len(det.frames),
                     frame=np.array([f for f, _ in rows], dtype=np.int64), pixels=pixels,
                     confidence=confidence, valid=valid, far=far,
                     score=np.array([float(p[1]) for _, p in rows]),
                     frame_ids=None if det.frame_ids is None else np.asarray(det.frame_ids, dtype=np.int64))
    people.tracks = track_detections(people.frame, pixels, valid, body_scale(pixels, valid), len(det.frames),
                                     [[getattr(p, "track_id", None) for p in frame] for frame in det.frames])
    people.label = np.concatenate([*people.tracks.labels, np.zeros(0, np.int64)])
    note = cut_note(people.tracks, people.frame_name)
    if note:
        logger.warning("%s: %s", path, note)
    return people


@dataclass
class _People:
    """Every detection of a file in Human3.6M-17 (P detections) and their tracks."""

    path: Path
    fmt: str
    layout: str
    size: tuple[int, int]
    fps: float | None
    min_confidence: float
    num_frames: int
    frame: np.ndarray  # (P,) frame index of each detection
    pixels: np.ndarray  # (P, 17, 2), NaN where a joint is absent
    confidence: np.ndarray  # (P, 17)
    valid: np.ndarray  # (P, 17) usable joints
    far: np.ndarray  # (P, 17) far outside the image (not valid)
    score: np.ndarray  # (P,) the tool's person score
    frame_ids: np.ndarray | None
    tracks: Tracks | None = None
    label: np.ndarray | None = None  # (P,) track id of each detection, -1 none

    def frame_name(self, f: int) -> str:
        """The input's frame number of frame index ``f`` (for messages)."""
        known = self.frame_ids is not None and f < len(self.frame_ids)
        return str(int(self.frame_ids[f])) if known else str(f)


def save_keypoints_npz(
    path: str | Path,
    pixels: np.ndarray,
    image_size: tuple[int, int],
    confidence: np.ndarray | None = None,
    fps: float | None = None,
    frame_ids: np.ndarray | None = None,
) -> None:
    """Atomically write the plain ``npz`` layout that :func:`load_keypoints` reads.

    Args:
        pixels: (F, 17, 2) pixels, Human3.6M order (NaN marks a missing joint).
        image_size: (width, height) pixels.
        confidence: optional (F, 17).
        fps: optional frame rate.
        frame_ids: optional (F,) increasing whole numbers, the source's frame number of each frame.
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
    if frame_ids is not None:
        arrays["frame_ids"] = np.asarray(frame_ids, dtype=np.int64).reshape(len(pixels))
    save_npz_atomic(path, **arrays)


# ---------------------------------------------------------------------------------------------------------
# Mapping, person choice, gap filling


def map_to_h36m(points: np.ndarray, table: MappingTable,
                min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(F, K, 3) source points (x, y, confidence) -> (F, 17, 2) pixels and (F, 17) confidence.

    A derived joint is the mean of its sources and its confidence the minimum of theirs. Source points
    that are non-finite or exactly at (0, 0) (OpenPose's "not found") are absent whatever ``min_confidence``
    is: a joint that needs one has NaN pixels and confidence 0. A joint takes the first alternative whose
    sources are all present with confidence >= ``min_confidence``, else the first alternative.
    """
    xy, conf = points[..., :2].copy(), points[..., 2].copy()
    absent = ~np.isfinite(points).all(axis=-1) | (xy == 0).all(axis=-1)
    conf[absent] = 0.0
    xy[absent] = np.nan
    pixels = np.full((len(points), len(table), 2), np.nan)
    confidence = np.zeros((len(points), len(table)))
    for j, alternatives in enumerate(table):
        done = np.zeros(len(points), bool)
        for k, sources in enumerate(alternatives):
            alt_xy = xy[:, list(sources)].mean(axis=1)  # (F, 2), NaN when a source is absent
            alt_conf = conf[:, list(sources)].min(axis=1)  # (F,)
            good = np.isfinite(alt_xy).all(axis=-1) & (alt_conf >= min_confidence)
            use = ~done & (good | (k == 0))
            pixels[use, j], confidence[use, j] = alt_xy[use], alt_conf[use]
            done |= good
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


def _choose_track(people: _People, person: int | None) -> int:
    """The track to lift: ``person`` (a track id), else the one seen in most frames (ties: the higher mean
    person score, then the lower id). ``ValueError`` for an id the file does not have."""
    counts = people.tracks.counts()
    ids = sorted(counts)
    if person is not None and person not in counts:
        most = int(np.bincount(people.frame[people.label >= 0]).max()) if (people.label >= 0).any() else 0
        shown = ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")
        raise ValueError(f"{people.path}: --person {person}: no such person; the file has {len(ids)} "
                         f"track(s) (ids {shown}) and at most {most} person(s) per frame")
    if person is None:
        person = people.tracks.most_seen({t: float(people.score[people.label == t].mean()) for t in ids})
        if len(ids) > 1:
            listed = ", ".join(f"{t}: {counts[t]}" for t in sorted(ids, key=lambda t: -counts[t])[:8])
            logger.warning("%s: %d people tracked (%s ids; frames seen: %s%s); lifting track %d, the one "
                           "seen in most frames. --person ID picks another, --all-people lifts every track",
                           people.path, len(ids),
                           "the file's" if people.tracks.source == "file" else "first-appearance", listed,
                           ", ..." if len(ids) > 8 else "", person)
    return person


def _track_keypoints(people: _People, track: int, quiet: bool = False) -> Keypoints:
    """One track as :class:`Keypoints`: gaps filled, never-seen joints inferred (``ValueError`` when it
    has fewer than 2 usable frames or too little of the body for the prior)."""
    path, F = people.path, people.num_frames
    rows = np.flatnonzero(people.label == track)
    frames = people.frame[rows]
    pixels = np.full((F, 17, 2), np.nan)
    confidence = np.zeros((F, 17))
    valid = np.zeros((F, 17), bool)
    far = np.zeros((F, 17), bool)
    pixels[frames], confidence[frames] = people.pixels[rows], people.confidence[rows]
    valid[frames], far[frames] = people.valid[rows], people.far[rows]
    name = f" (track {track})" if people.tracks.ids != [track] else ""
    frames_with_data = int(valid.any(axis=1).sum())
    if frames_with_data < 2:
        raise ValueError(f"{path}: only {frames_with_data} frame with usable keypoints{name}; at least 2 "
                         "needed")
    inferred = _infer_never_seen(people, pixels, valid, name)
    scales = body_scale(pixels[valid.any(axis=1)], valid[valid.any(axis=1)])
    scale = float(np.nanmedian(scales)) if np.isfinite(scales).any() else None
    for note in track_notes(people.tracks, track, people.frame_name, pixels, valid, scale, joins=not quiet):
        logger.warning("%s: %s", path, note)
    logger.info("%s: %d frames (%s, %s layout)%s; %.1f%% of joints filled", path, F, people.fmt,
                people.layout, name, 100.0 * (1.0 - valid.mean()))
    return Keypoints(
        pixels=fill_missing(pixels, valid | inferred).astype(np.float32),
        confidence=confidence.astype(np.float32),
        filled=~valid,
        image_size=people.size,
        source_format=people.fmt,
        fps=people.fps,
        far_outside=int(far.sum()),
        frame_ids=people.frame_ids,
        min_confidence=people.min_confidence,
        inferred=inferred,
        track_id=int(track),
        tracks=len(people.tracks.ids),
    )


def _infer_never_seen(people: _People, pixels: np.ndarray, valid: np.ndarray, name: str) -> np.ndarray:
    """``body_prior.place_never_seen`` with the file named in its error and a warning naming the joints."""
    try:
        inferred = place_never_seen(pixels, valid)
    except ValueError as err:
        raise ValueError(f"{people.path}: joint(s) {err}{name}; missing or below confidence "
                         f"{people.min_confidence} in every frame") from None
    if inferred.any():
        names = ", ".join(H36M_17.joints[j] for j in np.flatnonzero(inferred.any(axis=0)))
        logger.warning("%s: joint(s) %s never seen%s (missing or below confidence %s in every frame): "
                       "inferred from a mean body pose aligned to the visible joints and flagged as "
                       "'inferred': a guess, not a measurement", people.path, names, name,
                       people.min_confidence)
    return inferred


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


def check_fps(fps: Any, label: str) -> float:
    """A frame rate (number or one-element array) as a float; ``ValueError`` naming ``label`` (a flag such
    as ``--fps``, or ``<file>: fps``) unless it is a finite positive number."""
    try:
        value = float(np.asarray(fps).reshape(-1)[0]) if np.size(fps) == 1 else math.nan
        shown = str(value) if np.size(fps) == 1 else str(np.asarray(fps).tolist())
    except (TypeError, ValueError):
        value, shown = math.nan, repr(fps)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{label} {shown}: must be a finite positive number (frames per second)")
    return value


def _check_fps(path: Path, fps: Any) -> float | None:
    """The file's frame rate as a float (``None`` when absent); ``ValueError`` unless finite and > 0."""
    return None if fps is None else check_fps(fps, f"{path}: fps")


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
