"""Metric scale of lifted poses: bone lengths, a reference skeleton, a robust scale estimate, body height.

The absolute size of a person cannot be known from 2D alone: a small person near the camera and a tall one
further away project alike. The network outputs the size its training data taught it to expect, and on
2D from real detectors that size drifts: the bundled model's thighs were 265 mm on MediaPipe 2D of a real
clip, 270-300 mm reported on other detectors, against 414 mm in its mean training skeleton.
``posediffusion lift`` therefore rescales its output (``--scale``, :func:`estimate_scale`):

* ``prior`` (default): scale ``s`` so the sequence's stable segments match the *reference skeleton*, the
  mean of the bundled model's training skeletons (:data:`REFERENCE_LENGTHS_M`);
* ``height``: scale so the standing height of the body model (:func:`standing_height`) is a known height;
* ``none``: the network's raw output.

A body scaled by ``s`` and placed ``s`` times further from a (weak- or full-perspective) camera projects to
the same 2D, so every one of these sizes fits the input equally well.

Shapes: F frames, J = 17 joints in the Human3.6M order (:data:`posediffusion.skeleton.H36M_17`), S
segments. Lengths in metres.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from posediffusion.skeleton import H36M_17

log = logging.getLogger(__name__)

#: ``--scale`` choices: to the reference skeleton, to a known height, or the network's output as is.
SCALE_METHODS = ("prior", "height", "none")

#: Reference lengths, metres, between pairs of Human3.6M-17 joints: the 16 bones and the hip and shoulder
#: widths. Computed once (the numbers are fixed here, not recomputed) from the CMU motion the bundled model
#: was trained on, ``../shared/data/mocap/cmu_h36m17_50hz.npz`` (world millimetres; development data, not
#: shipped): the 79 motions that ``prepare mocap --seed 0`` (``data.mocap.split_motions``) gives the
#: training subjects S1, S5, S6, S7, S8 (39,065 frames); per motion the median over its frames of each
#: length (the performer's skeleton), then the mean over the motions (each skeleton counts once, however
#: long its take), then left and right averaged. The rigs differ a lot: per-motion thighs range 288 mm
#: (the ``_sl`` salsa rig, 23 motions) to 477 mm (the ``_cc`` rig, 48 motions); the frame-weighted mean
#: thigh would be 380 mm. The reference is 1.64 m tall by :func:`standing_height`.
REFERENCE_LENGTHS_M: dict[tuple[str, str], float] = {
    ("Hip", "RHip"): 0.0871,
    ("RHip", "RKnee"): 0.4145,  # thigh
    ("RKnee", "RAnkle"): 0.4478,  # shin
    ("Hip", "LHip"): 0.0871,
    ("LHip", "LKnee"): 0.4145,
    ("LKnee", "LAnkle"): 0.4478,
    ("Hip", "Spine"): 0.2556,
    ("Spine", "Thorax"): 0.2514,
    ("Thorax", "Neck/Nose"): 0.0728,
    ("Neck/Nose", "Head"): 0.1217,
    ("Thorax", "LShoulder"): 0.1657,
    ("LShoulder", "LElbow"): 0.2448,  # upper arm
    ("LElbow", "LWrist"): 0.2288,  # forearm
    ("Thorax", "RShoulder"): 0.1657,
    ("RShoulder", "RElbow"): 0.2448,
    ("RElbow", "RWrist"): 0.2288,
    ("RHip", "LHip"): 0.1742,  # hip width
    ("LShoulder", "RShoulder"): 0.3124,  # shoulder width
}

#: Segments the ``prior`` scale is measured on: name -> joint path (Human3.6M-17 names); a segment's length
#: is the sum of the distances along its path. Long, rigid segments only: not the clavicles or the neck and
#: head, whose joints are placed differently by every detector and mocap conversion. The spine is the
#: Hip-Spine-Thorax path, which bending changes less than the Hip-Thorax distance.
SCALE_SEGMENTS: dict[str, tuple[str, ...]] = {
    "right thigh": ("RHip", "RKnee"), "left thigh": ("LHip", "LKnee"),
    "right shin": ("RKnee", "RAnkle"), "left shin": ("LKnee", "LAnkle"),
    "right upper arm": ("RShoulder", "RElbow"), "left upper arm": ("LShoulder", "LElbow"),
    "right forearm": ("RElbow", "RWrist"), "left forearm": ("LElbow", "LWrist"),
    "hip width": ("RHip", "LHip"), "shoulder width": ("LShoulder", "RShoulder"),
    "spine": ("Hip", "Spine", "Thorax"),
}

#: The ankle-to-head-top chain of the height model, sole upwards: each link is one bone, or a (right, left)
#: pair whose lengths are averaged.
HEIGHT_CHAIN: tuple[tuple[tuple[str, str], ...], ...] = (
    (("RKnee", "RAnkle"), ("LKnee", "LAnkle")),  # shin
    (("RHip", "RKnee"), ("LHip", "LKnee")),  # thigh (the hip joints sit beside the pelvis centre)
    (("Hip", "Spine"),), (("Spine", "Thorax"),), (("Thorax", "Neck/Nose"),), (("Neck/Nose", "Head"),),
)
#: Height of the ankle joint above the sole, as a fraction of the standing height. Anthropometry puts the
#: lateral malleolus at 0.039 of the stature (Drillis & Contini 1966, as tabulated in Winter, *Biomechanics
#: and Motor Control of Human Movement*, fig. 4.1): 66 mm at 1.70 m, 72 mm at 1.85 m; in the standing
#: frames of the CMU training motions ``007_*_cc`` the ankle joint is 55 mm above the floor.
ANKLE_TO_SOLE = 0.039
#: From the Head joint to the crown (vertex), as a fraction of the standing height. Human3.6M-17's Head is
#: the end site of the head bone, the top of the skull (3DHP's ``head_top`` maps to it); about a centimetre
#: of scalp and hair (0.006 x 1.70 m) separates it from the vertex a stadiometer touches (an estimate, not
#: a measurement). No posture term is needed: in those CMU standing frames the straight chain spans the
#: ankle-to-Head height within 0.5 %. Both offsets are fractions, not fixed lengths, so the height is
#: proportional to the skeleton: scaling a pose by s scales its height by s.
HEAD_TO_CROWN = 0.006
#: Standing heights ``--height`` accepts, metres: beyond these it is a typo or centimetres.
HEIGHT_RANGE_M = (0.5, 2.5)
#: Segments shorter than this (metres) are degenerate (joints on top of each other) and are not used.
MIN_LENGTH_M = 1e-4

_INDEX = {name: j for j, name in enumerate(H36M_17.joints)}
#: The share of the standing height that the ankle-to-head-top chain spans.
_CHAIN_FRACTION = 1.0 - ANKLE_TO_SOLE - HEAD_TO_CROWN


def bone_lengths(pose: np.ndarray) -> np.ndarray:
    """Length of every bone of :data:`H36M_17`.

    Parameters
    ----------
    pose : (..., 17, 3) array
        Human3.6M-17 joint positions, any unit.

    Returns
    -------
    (..., 16) float64 array
        The bone lengths in that unit, in the order of ``H36M_17.bones()`` (bone k ends in joint k + 1).
    """
    pose = _check_pose(pose)
    child, parent = np.array(H36M_17.bones()).T  # (16,), (16,)
    return np.linalg.norm(pose[..., child, :] - pose[..., parent, :], axis=-1)


def path_length(pose: np.ndarray, path: tuple[str, ...]) -> np.ndarray:
    """(..., 17, 3) -> (...,): the length of a joint path (names of :data:`H36M_17`), in the pose's unit."""
    idx = [_INDEX[name] for name in path]
    steps = np.diff(_check_pose(pose)[..., idx, :], axis=-2)  # (..., len(path) - 1, 3)
    return np.linalg.norm(steps, axis=-1).sum(-1)


def reference_length(path: tuple[str, ...]) -> float:
    """Length of a joint path in the reference skeleton (:data:`REFERENCE_LENGTHS_M`), metres."""
    def pair(a: str, b: str) -> float:
        return REFERENCE_LENGTHS_M[(a, b)] if (a, b) in REFERENCE_LENGTHS_M else REFERENCE_LENGTHS_M[(b, a)]
    return sum(pair(a, b) for a, b in zip(path[:-1], path[1:], strict=True))


def prior_scale(poses: np.ndarray, inferred: np.ndarray | None = None) -> float:
    """Robust factor ``s`` that brings a sequence's size to the reference skeleton.

    Per frame, ``s_f = sum(reference) / sum(predicted)`` over the :data:`SCALE_SEGMENTS` whose joints were
    all seen (a ratio of sums: a mean of the per-segment ratios weighted by length, so the long segments,
    whose relative error is the smallest, count most); then ``s`` is the median of ``s_f`` over frames,
    so a minority of bad frames does not move it.

    Parameters
    ----------
    poses : (F, 17, 3) array
        Lifted poses, metres.
    inferred : (F, 17) or (17,) bool array, optional
        Joints never seen in the input (placed from a body prior): segments that touch them are ignored.

    Returns
    -------
    float
        ``s``: ``s * poses`` has the reference's segment lengths.
    """
    poses = _check_pose(poses, sequence=True)
    seen = _seen(inferred, poses)  # (F, 17)
    paths = list(SCALE_SEGMENTS.values())
    lengths = np.stack([path_length(poses, p) for p in paths], axis=-1)  # (F, S)
    reference = np.array([reference_length(p) for p in paths])  # (S,)
    valid = np.stack([seen[:, [_INDEX[n] for n in p]].all(-1) for p in paths], axis=-1)  # (F, S)
    valid &= np.isfinite(lengths) & (lengths > MIN_LENGTH_M)
    frames = valid.any(-1)  # (F,)
    if not frames.any():
        raise ValueError("cannot estimate the scale: no limb, hip, shoulder or spine segment has both "
                         "joints seen in any frame")
    ratio = (valid * reference).sum(-1)[frames] / np.where(valid, lengths, 0.0).sum(-1)[frames]
    return float(np.median(ratio))


def chain_length(poses: np.ndarray, inferred: np.ndarray | None = None) -> float:
    """The ankle-to-head-top chain of :data:`HEIGHT_CHAIN` (shin + thigh + Hip-Spine + Spine-Thorax +
    Thorax-Neck/Nose + Neck/Nose-Head), metres: each bone's median over the frames where both its joints
    were seen, left and right averaged (one side when the other was never seen; a link seen on neither
    side takes its median over all frames, with a warning).

    Parameters
    ----------
    poses : (F, 17, 3) array
        Poses, metres.
    inferred : (F, 17) or (17,) bool array, optional
        Joints never seen in the input.
    """
    poses = _check_pose(poses, sequence=True)
    seen = _seen(inferred, poses)  # (F, 17)
    total = 0.0
    for link in HEIGHT_CHAIN:
        sides = []
        for a, b in link:
            lengths = path_length(poses, (a, b))  # (F,)
            ok = seen[:, _INDEX[a]] & seen[:, _INDEX[b]] & np.isfinite(lengths)
            if ok.any():
                sides.append(float(np.median(lengths[ok])))
        if not sides:
            log.warning("height: %s never seen; its length is the network's guess", "-".join(link[0]))
            sides = [float(np.median(path_length(poses, link[0])))]
        total += float(np.mean(sides))
    return total


def standing_height(poses: np.ndarray, inferred: np.ndarray | None = None) -> float:
    """Standing height of the body the poses describe, metres: :func:`chain_length` plus the ankle-to-sole
    and head-to-crown offsets (:data:`ANKLE_TO_SOLE`, :data:`HEAD_TO_CROWN`, fractions of the height), so
    ``height = chain / (1 - ANKLE_TO_SOLE - HEAD_TO_CROWN)``. Arguments as :func:`chain_length`."""
    return chain_length(poses, inferred) / _CHAIN_FRACTION


def reference_height() -> float:
    """Standing height of the reference skeleton by the same model, metres (1.64 m)."""
    chain = sum(np.mean([reference_length(side) for side in link]) for link in HEIGHT_CHAIN)
    return float(chain) / _CHAIN_FRACTION


def height_scale(poses: np.ndarray, height: float, inferred: np.ndarray | None = None) -> float:
    """Factor ``s`` with ``standing_height(s * poses) == height``: ``s = height / standing_height(poses)``.

    Parameters
    ----------
    poses : (F, 17, 3) array
        Poses, metres.
    height : float
        The person's standing height, metres, within :data:`HEIGHT_RANGE_M`.
    inferred : (F, 17) or (17,) bool array, optional
        Joints never seen in the input.
    """
    height = check_height(height)
    chain = chain_length(poses, inferred)
    if not chain > MIN_LENGTH_M:
        raise ValueError(f"cannot scale to a height: the poses' ankle-to-head chain is {chain:.3g} m")
    return height * _CHAIN_FRACTION / chain


def estimate_scale(poses: np.ndarray, method: str = "prior", height: float | None = None,
                   inferred: np.ndarray | None = None) -> float:
    """The factor of ``--scale METHOD`` (:data:`SCALE_METHODS`): :func:`prior_scale`, :func:`height_scale`
    (needs ``height``, metres) or 1 for ``"none"``. Poses (F, 17, 3) metres; ``inferred`` as
    :func:`prior_scale`."""
    check_scale_options(method, height)
    if method == "none":
        return 1.0
    if method == "height":
        return height_scale(poses, height, inferred)
    return prior_scale(poses, inferred)


def check_scale_options(method: str, height: float | None) -> None:
    """``ValueError`` unless ``method`` is one of :data:`SCALE_METHODS` and a height is given exactly when
    the method is ``"height"`` (and is a plausible standing height, :func:`check_height`)."""
    if method not in SCALE_METHODS:
        raise ValueError(f"--scale {method!r}: must be one of {', '.join(SCALE_METHODS)}")
    if method == "height" and height is None:
        raise ValueError("--scale height needs --height METRES (the person's standing height)")
    if method != "height" and height is not None:
        raise ValueError(f"--height {height:g} and --scale {method}: --height scales to that height; "
                         "give one of them")
    if height is not None:
        check_height(height)


def check_height(height: float, flag: str = "--height") -> float:
    """A standing height in metres within :data:`HEIGHT_RANGE_M`, else a ``ValueError`` naming ``flag``."""
    low, high = HEIGHT_RANGE_M
    value = float(height)
    if math.isfinite(value) and low <= value <= high:
        return value
    hint = f" (in metres: {value / 100:.2f}?)" if math.isfinite(value) and low <= value / 100 <= high else ""
    raise ValueError(f"{flag} {height:g}: must be a standing height in metres between {low:g} and {high:g}"
                     + hint)


def _check_pose(pose: np.ndarray, sequence: bool = False) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-2:] != (H36M_17.num_joints, 3) or (sequence and pose.ndim != 3):
        want = "(F, 17, 3)" if sequence else "(..., 17, 3)"
        raise ValueError(f"poses must be {want} Human3.6M-17 positions, got shape {pose.shape}")
    return pose


def _seen(inferred: np.ndarray | None, poses: np.ndarray) -> np.ndarray:
    """(F, 17) bool: joints seen, from an optional (F, 17) or (17,) ``inferred`` mask."""
    if inferred is None:
        return np.ones(poses.shape[:2], dtype=bool)
    inferred = np.asarray(inferred, dtype=bool)
    if inferred.shape not in ((H36M_17.num_joints,), poses.shape[:2]):
        raise ValueError(f"inferred must be (F, 17) or (17,) for poses {poses.shape}, got {inferred.shape}")
    return ~np.broadcast_to(inferred, poses.shape[:2])
