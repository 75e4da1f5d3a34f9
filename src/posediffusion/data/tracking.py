"""Who is who across frames: identity tracks for the people of a multi-person keypoint file.

Pose tools list the people of each frame in detector-score order, which is not identity: taking "the best
person" or "the k-th person" of every frame makes the track jump between people. This module gives each
detection a track id (pure numpy/scipy, any joint layout; the defaults name Human3.6M-17 joints):

The entry point is :func:`track_detections` (flat detections in, :class:`Tracks` out):

* **File ids** (:func:`file_id_tracks`): when the file carries track ids (AlphaPose ``idx`` with PoseFlow
  or ``--pose_track``, PoseTrack/MMPose ``track_id``, OpenPose ``person_id``) for every detection and no
  frame repeats an id (:func:`usable_file_ids`), they are the tracks.
* **Association** (:func:`associate`): otherwise tracks are built frame by frame. Each live track predicts
  its pose (last pose moved by its recent velocity); the cost of giving it a detection is the mean joint
  distance to the prediction in torso lengths plus ``iou_weight`` x (1 - IoU) of the keypoint boxes, plus a
  small penalty per frame the track went unseen. Detections are assigned by the Hungarian method
  (``scipy.optimize.linear_sum_assignment``). An assignment is allowed only if the body (the median of its
  pelvis/shoulder joints) moved at most ``max_jump`` torso lengths per frame since the track was last seen
  (and at most ``max_jump * (1 + gap) / 2`` from the prediction), so a track never jumps to another person.
  A track may go unseen for up to ``max_gap`` frames (gap bridging); unmatched detections start new tracks.
* **Cuts** (:func:`find_cuts`): a frame where every association breaks (all tracks seen before it end, all
  seen in it start, none spans it) is reported as a cut. Where one track ends and one starts there
  (one person and a camera cut, or one person leaving and coming back with nobody in view between), the two
  are joined into one track: the only place a track may jump.
* **Ambiguity**: when swapping two tracks' detections (or giving a track another detection) costs less than
  ``ambiguity_margin`` more than the chosen assignment, and the detections differ, the frame is recorded in
  ``Tracks.ambiguous`` for both tracks (people overlapping: identity may have switched).

Track ids: the file's ids when it has them; otherwise 0, 1, 2, ... in order of first appearance (people who
appear in the same frame numbered left to right).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Human3.6M-17 pelvis, hips, spine, thorax and shoulders: their median move is the body's move.
CORE_JOINTS = (0, 1, 4, 7, 8, 11, 14)

#: Cost of an impossible assignment (above any real cost).
_BLOCKED = 1e6


@dataclass(frozen=True)
class TrackerConfig:
    """Association settings; distances are in torso lengths of the person (``body_scale``)."""

    #: Frames a track may go undetected and still be continued (gap bridging).
    max_gap: int = 10
    #: Largest move of the body per frame, torso lengths.
    max_jump: float = 1.0
    #: Weight of (1 - IoU) of the keypoint boxes in the cost.
    iou_weight: float = 0.5
    #: Added cost per frame a track went unseen (recent tracks win ties).
    gap_penalty: float = 0.05
    #: Alternatives within this cost of the chosen assignment make the frame ambiguous.
    ambiguity_margin: float = 0.25
    #: Joints whose median move is the body's move.
    core_joints: tuple[int, ...] = CORE_JOINTS


@dataclass
class Tracks:
    """Track ids of every detection.

    Attributes:
        labels: per frame an (n_f,) int64 array, the track id of each detection (-1: none, e.g. no joint).
        source: ``"file"`` (the file's ids) or ``"associated"``.
        cuts: frames where every association broke (see the module docstring).
        joins: (track id, frame) where a track was continued across a cut or an empty stretch (the
            module docstring): the frames where it may jump.
        ambiguous: track id -> frames where its identity was ambiguous.
    """

    labels: list[np.ndarray]
    source: str
    cuts: list[int] = field(default_factory=list)
    joins: list[tuple[int, int]] = field(default_factory=list)
    ambiguous: dict[int, list[int]] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        """Track ids, sorted."""
        return sorted({int(t) for labels in self.labels for t in labels if t >= 0})

    def frames(self, track: int) -> np.ndarray:
        """Frame indices where ``track`` has a detection."""
        hits = [f for f, labels in enumerate(self.labels) if (labels == track).any()]
        return np.array(hits, dtype=np.int64)

    def counts(self) -> dict[int, int]:
        """Track id -> number of frames with a detection."""
        out: dict[int, int] = {}
        for labels in self.labels:
            for t in set(labels[labels >= 0].tolist()):
                out[t] = out.get(t, 0) + 1
        return out

    def most_seen(self, score: dict[int, float] | None = None) -> int:
        """The track seen in most frames (ties: the higher ``score``, then the lower id)."""
        counts = self.counts()
        return max(counts, key=lambda t: (counts[t], (score or {}).get(t, 0.0), -t))

    def detection(self, frame: int, track: int) -> int | None:
        """Index of ``track``'s detection in ``frame``, or ``None``."""
        hits = np.flatnonzero(self.labels[frame] == track)
        return int(hits[0]) if len(hits) else None


def usable_file_ids(ids: Sequence[Sequence[int | None]]) -> bool:
    """Whether per-frame file ids can serve as tracks: every detection has one and no frame repeats one
    (AlphaPose without tracking writes the same ``idx`` for everybody)."""
    if not any(len(frame) for frame in ids):
        return False
    return all(all(i is not None for i in frame) and len(set(frame)) == len(frame) for frame in ids)


def file_id_tracks(ids: Sequence[Sequence[int | None]], present: Sequence[np.ndarray]) -> Tracks:
    """Tracks from the file's ids (check :func:`usable_file_ids` first); detections without a usable
    joint (``present[f][i]`` False) get -1."""
    labels = [np.array([int(i) if ok else -1 for i, ok in zip(frame, keep, strict=True)], dtype=np.int64)
              for frame, keep in zip(ids, present, strict=True)]
    return Tracks(labels=labels, source="file")


def track_detections(frame: np.ndarray, poses: np.ndarray, valid: np.ndarray, scales: np.ndarray,
                     num_frames: int, file_ids: Sequence[Sequence[int | None]] | None = None,
                     config: TrackerConfig | None = None) -> Tracks:
    """Tracks of P detections given flat: ``frame`` (P,) sorted frame index of each, ``poses`` (P, J, 2)
    pixels, ``valid`` (P, J), ``scales`` (P,) torso lengths (NaN: unknown); ``file_ids`` per frame when the
    file has ids. Uses the file's ids when :func:`usable_file_ids`, else :func:`associate`."""
    split = np.searchsorted(frame, np.arange(1, num_frames))
    per_frame_valid = np.split(valid, split)
    if file_ids is not None and usable_file_ids(file_ids):
        return file_id_tracks(file_ids, [v.any(axis=1) for v in per_frame_valid])
    return associate(np.split(np.nan_to_num(poses), split), per_frame_valid, np.split(scales, split), config)


def body_move(a: np.ndarray, a_valid: np.ndarray, b: np.ndarray, b_valid: np.ndarray,
              core: Sequence[int] = CORE_JOINTS) -> np.ndarray | None:
    """The body's move from pose ``a`` to pose ``b`` ((J, 2) each): the median displacement of the core
    joints valid in both, else of all joints valid in both, else of the centroids; ``None`` if either pose
    has no valid joint."""
    if not a_valid.any() or not b_valid.any():
        return None
    both = a_valid & b_valid
    core_mask = np.zeros_like(both)
    core_mask[list(core)] = True
    pick = both & core_mask if (both & core_mask).any() else both
    if pick.any():
        return np.median(b[pick] - a[pick], axis=0)
    return b[b_valid].mean(axis=0) - a[a_valid].mean(axis=0)


def track_jumps(pixels: np.ndarray, valid: np.ndarray, scale: float, max_jump: float = 1.0,
                core: Sequence[int] = CORE_JOINTS) -> list[int]:
    """Frames f where a track ((F, J, 2) pixels, (F, J) valid) moves more than ``max_jump * scale`` per
    frame since its previous frame with a valid joint (``scale``: torso length, pixels)."""
    jumps, last = [], None
    for f in range(len(pixels)):
        if not valid[f].any():
            continue
        if last is not None:
            move = body_move(pixels[last], valid[last], pixels[f], valid[f], core)
            if move is not None and np.linalg.norm(move) > max_jump * scale * (f - last):
                jumps.append(f)
        last = f
    return jumps


@dataclass
class _Live:
    """A track being built: last known pose, per-joint age, velocity and recent scales."""

    label: int
    pose: np.ndarray  # (J, 2)
    age: np.ndarray  # (J,) frames since each joint was seen (large: never)
    last_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    scales: list[float] = field(default_factory=list)

    def scale(self, fallback: float) -> float:
        recent = [s for s in self.scales[-10:] if np.isfinite(s)]
        return float(np.median(recent)) if recent else fallback


def _boxes(poses: np.ndarray, valid: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """(n, J, 2) poses, (n, J) valid, (n,) or scalar pad -> (n, 4) boxes (x0, y0, x1, y1) of valid joints."""
    low = np.where(valid[..., None], poses, np.inf).min(axis=1)
    high = np.where(valid[..., None], poses, -np.inf).max(axis=1)
    pad = np.reshape(pad, (-1, 1))
    return np.concatenate([low - pad, high + pad], axis=1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in (T, 4) ``a`` with every box in (N, 4) ``b`` -> (T, N)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _cost_matrix(active: list[_Live], poses: np.ndarray, valid: np.ndarray, frame: int, fallback: float,
                 config: TrackerConfig) -> np.ndarray:
    """(T, N) cost of giving each live track each detection of ``frame``; ``_BLOCKED`` where not allowed
    (module docstring: the body may move at most ``max_jump`` torso lengths per frame)."""
    pose_t = np.stack([t.pose for t in active])  # (T, J, 2)
    known = np.stack([t.age <= config.max_gap for t in active])  # (T, J)
    gap = np.array([frame - t.last_frame for t in active], dtype=np.float64)  # (T,)
    velocity = np.stack([t.velocity for t in active])  # (T, 2)
    scale = np.array([t.scale(fallback) for t in active])  # (T,)
    both = known[:, None] & valid[None]  # (T, N, J)
    core = np.zeros(valid.shape[1], bool)
    core[list(config.core_joints)] = True
    pick = np.where((both & core).any(axis=-1, keepdims=True), both & core, both)
    shift = poses[None] - pose_t[:, None]  # (T, N, J, 2)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no joint in common
        move = np.nanmedian(np.where(pick[..., None], shift, np.nan), axis=2)  # (T, N, 2)
    centroid_t = (pose_t * known[..., None]).sum(1) / np.maximum(known.sum(1), 1)[:, None]
    centroid_d = (poses * valid[..., None]).sum(1) / np.maximum(valid.sum(1), 1)[:, None]
    common = pick.any(axis=-1)  # (T, N)
    move = np.where(common[..., None], move, centroid_d[None] - centroid_t[:, None])
    expected = (velocity * gap[:, None])[:, None]  # (T, 1, 2)
    residual = np.linalg.norm(move - expected, axis=-1)
    limit = config.max_jump * scale[:, None]
    allowed = ((np.linalg.norm(move, axis=-1) <= limit * gap[:, None])
               & (residual <= limit * (1 + gap[:, None]) / 2) & valid.any(axis=1)[None])
    predicted = pose_t + expected  # (T, J, 2)
    error = np.linalg.norm(poses[None] - predicted[:, None], axis=-1)  # (T, N, J)
    mean_error = (error * both).sum(-1) / np.maximum(both.sum(-1), 1)
    # no joint in common: the centroid distance, penalised
    distance = np.where(both.any(-1), mean_error, residual + 0.5 * scale[:, None]) / scale[:, None]
    with np.errstate(invalid="ignore"):  # detections without a valid joint have infinite boxes (blocked)
        iou = _iou(_boxes(predicted, known, 0.1 * scale), _boxes(poses, valid, 0.1 * np.median(scale)))
    cost = distance + config.iou_weight * (1.0 - iou) + config.gap_penalty * (gap[:, None] - 1)
    return np.where(allowed, cost, _BLOCKED)


def associate(poses: Sequence[np.ndarray], valid: Sequence[np.ndarray], scales: Sequence[np.ndarray],
              config: TrackerConfig | None = None) -> Tracks:
    """Build tracks by association (module docstring), then find cuts and join tracks across them.

    Args:
        poses: per frame an (n_f, J, 2) array of the detections' joints, pixels.
        valid: per frame (n_f, J) bool, the joints to trust.
        scales: per frame (n_f,) torso lengths in pixels (NaN: unknown, the clip's median is used).
        config: settings (``TrackerConfig()`` by default).
    """
    config = config or TrackerConfig()
    known_scales = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1) for s in scales] or [[]])
    known_scales = known_scales[np.isfinite(known_scales) & (known_scales > 0)]
    fallback = float(np.median(known_scales)) if len(known_scales) else 100.0
    live: list[_Live] = []
    labels: list[np.ndarray] = []
    ambiguous: dict[int, set[int]] = {}
    next_label = 0
    for f, (pose_f, valid_f, scale_f) in enumerate(zip(poses, valid, scales, strict=True)):
        pose_f, valid_f = np.nan_to_num(np.asarray(pose_f, dtype=np.float64)), np.asarray(valid_f, dtype=bool)
        n = len(pose_f)
        label_f = np.full(n, -1, dtype=np.int64)
        usable = [i for i in range(n) if valid_f[i].any()]
        active = [t for t in live if f - t.last_frame <= config.max_gap]
        cost = _cost_matrix(active, pose_f, valid_f, f, fallback, config) if active and n else (
            np.full((len(active), n), _BLOCKED))
        pairs: list[tuple[int, int]] = []
        if active and usable:
            rows, cols = linear_sum_assignment(cost)
            pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _BLOCKED]
        for r, i in _ambiguous_pairs(cost, pairs, pose_f, valid_f, active, fallback, config):
            for track in (active[r], active[i]):
                ambiguous.setdefault(track.label, set()).add(f)
        for r, i in pairs:
            _update(active[r], pose_f[i], valid_f[i], float(scale_f[i]), f, config)
            label_f[i] = active[r].label
        new = [i for i in usable if label_f[i] < 0]
        new.sort(key=lambda i: float(pose_f[i][valid_f[i]][:, 0].mean()))  # left to right
        for i in new:
            age = np.where(valid_f[i], 0, 10**9).astype(np.int64)
            track = _Live(next_label, np.where(valid_f[i][:, None], pose_f[i], 0.0), age, f,
                          scales=[float(scale_f[i])])
            live.append(track)
            label_f[i] = next_label
            next_label += 1
        live = [t for t in live if f - t.last_frame <= config.max_gap]
        labels.append(label_f)
    tracks = Tracks(labels=labels, source="associated",
                    ambiguous={t: sorted(frames) for t, frames in ambiguous.items()})
    tracks.cuts = find_cuts(tracks)
    _link_across_breaks(tracks)
    return tracks


def _update(track: _Live, pose: np.ndarray, valid: np.ndarray, scale: float, frame: int,
            config: TrackerConfig) -> None:
    """Move ``track`` to its new detection: velocity (smoothed), pose, joint ages, scale."""
    gap = frame - track.last_frame
    known = track.age <= config.max_gap
    move = body_move(track.pose, known, pose, valid, config.core_joints)
    if move is not None:
        step = move / gap
        track.velocity = step if not track.scales[1:] else 0.5 * track.velocity + 0.5 * step
    shifted = track.pose + (move if move is not None else 0.0)
    track.pose = np.where(valid[:, None], pose, shifted)
    track.age = np.where(valid, 0, track.age + gap)
    track.last_frame = frame
    track.scales.append(scale)


def _ambiguous_pairs(cost: np.ndarray, pairs: list[tuple[int, int]], poses: np.ndarray, valid: np.ndarray,
                     active: list[_Live], fallback: float, config: TrackerConfig) -> list[tuple[int, int]]:
    """(row, row) pairs of tracks whose identities could be swapped in this frame: an alternative assignment
    within ``ambiguity_margin`` of the chosen one, between detections that differ."""

    def differ(i: int, k: int, scale: float) -> bool:
        both = valid[i] & valid[k]
        if not both.any():
            return True
        return float(np.linalg.norm(poses[i][both] - poses[k][both], axis=-1).mean()) > (
            config.ambiguity_margin * scale)

    out = []
    for (r1, c1), (r2, c2) in itertools.combinations(pairs, 2):
        if cost[r1, c2] >= _BLOCKED or cost[r2, c1] >= _BLOCKED:
            continue
        extra = cost[r1, c2] + cost[r2, c1] - cost[r1, c1] - cost[r2, c2]
        if extra < config.ambiguity_margin and differ(c1, c2, active[r1].scale(fallback)):
            out.append((r1, r2))
    matched_rows = {r for r, _ in pairs}
    for r, c in pairs:  # an unmatched live track that would have fitted this detection almost as well
        for r2 in range(len(active)):
            if r2 not in matched_rows and cost[r2, c] < _BLOCKED and cost[r2, c] - cost[r, c] < (
                    config.ambiguity_margin):
                out.append((r, r2))
    return out


def _spans(tracks: Tracks) -> tuple[dict[int, int], dict[int, int]]:
    """(first frame, last frame) of every track id that is seen."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for f, labels in enumerate(tracks.labels):
        for t in labels[labels >= 0].tolist():
            first.setdefault(t, f)
            last[t] = f
    return first, last


def find_cuts(tracks: Tracks) -> list[int]:
    """Frames f where every association breaks: someone is seen in f and in the previous frame with a
    detection, and no track is seen both before f and at or after f."""
    first, last = _spans(tracks)
    cuts, previous = [], None
    for f, labels in enumerate(tracks.labels):
        if not (labels >= 0).any():
            continue
        if previous is not None and not any(first[t] < f <= last[t] for t in first) and previous == f - 1:
            cuts.append(f)
        previous = f
    return cuts


def _link_across_breaks(tracks: Tracks) -> None:
    """Join track B into track A (in place) where A is the only track seen in the last frame with anyone
    before B's first frame, B the only one seen in its first frame, A ends there and no track spans the
    break: one person, cut or out of view, is one track."""
    first, last = _spans(tracks)
    previous: int | None = None
    for f, labels in enumerate(tracks.labels):
        seen = set(labels[labels >= 0].tolist())
        if not seen:
            continue
        if previous is not None:
            before = set(tracks.labels[previous][tracks.labels[previous] >= 0].tolist())
            spans = any(first[t] < f <= last[t] for t in first)
            if len(before) == 1 and len(seen) == 1 and not spans:
                (a,), (b,) = before, seen
                if last[a] == previous and first[b] == f and a != b:
                    for frame_labels in tracks.labels[f:]:
                        frame_labels[frame_labels == b] = a
                    last[a] = last.pop(b)
                    first.pop(b)
                    tracks.joins.append((a, f))
                    if b in tracks.ambiguous:
                        tracks.ambiguous[a] = sorted(set(tracks.ambiguous.get(a, [])) | set(
                            tracks.ambiguous.pop(b)))
        previous = f
    _renumber(tracks)


def _renumber(tracks: Tracks) -> None:
    """Ids 0, 1, ... in order of first appearance (ids were given in that order; joins leave holes)."""
    order: dict[int, int] = {}
    for labels in tracks.labels:
        for t in sorted(set(labels[labels >= 0].tolist())):  # new tracks of a frame were made left to right
            order.setdefault(t, len(order))
    for labels in tracks.labels:
        labels[labels >= 0] = [order[t] for t in labels[labels >= 0].tolist()]
    tracks.joins = [(order[a], f) for a, f in tracks.joins]
    tracks.ambiguous = {order[t]: frames for t, frames in tracks.ambiguous.items() if t in order}


# ---------------------------------------------------------------------------------------------------------
# What to tell the user


def _listed(frames: Sequence[int], frame_name: Callable[[int], str], limit: int = 5) -> str:
    return ", ".join(frame_name(f) for f in frames[:limit]) + (", ..." if len(frames) > limit else "")


def track_notes(tracks: Tracks, track: int, frame_name: Callable[[int], str],
                pixels: np.ndarray | None = None, valid: np.ndarray | None = None, scale: float | None = None,
                joins: bool = True) -> list[str]:
    """Warnings about one track: ambiguous identity, continuations across cuts (``joins``), and for file
    ids (given the track's (F, J, 2) ``pixels``, ``valid`` and torso ``scale`` in pixels) moves of more than a
    torso length in one frame. ``frame_name`` turns a frame index into the input's frame number."""
    notes = []
    ambiguous = tracks.ambiguous.get(track, [])
    if ambiguous:
        notes.append(f"the identity of track {track} is ambiguous in {len(ambiguous)} frame(s) (first: frame "
                     f"{frame_name(ambiguous[0])}): another person overlaps it and the assignment is close; "
                     "check those frames")
    joined = [f for t, f in tracks.joins if t == track]
    if joined and joins:
        notes.append(f"track {track} continues across frame(s) {_listed(joined, frame_name)} where it jumps "
                     "(a cut, or out of view with nobody else in view)")
    if tracks.source == "file" and pixels is not None and valid is not None and scale and np.isfinite(scale):
        jumps = track_jumps(np.nan_to_num(pixels), valid, scale)
        if jumps:
            notes.append(f"track {track} (the file's id) moves more than a torso length in one frame at "
                         f"frame(s) {_listed(jumps, frame_name)}: the file's ids may mix people")
    return notes


def cut_note(tracks: Tracks, frame_name: Callable[[int], str]) -> str | None:
    """One warning for the frames where every association breaks (``Tracks.cuts``), or ``None``."""
    if not tracks.cuts:
        return None
    return (f"every track breaks at {len(tracks.cuts)} frame(s) (frame {_listed(tracks.cuts, frame_name)}): "
            "a cut, or everybody moved more than a torso length at once. A track continues across one only "
            "where one person is in view on both sides")
