"""A 2D body prior for Human3.6M-17: body size, and joints that a clip never shows.

``TEMPLATE_2D`` is a mean standing pose seen from the front, built from the mean bone lengths of the
Human3.6M subjects (millimetres, u right, v down, the person facing the camera so their left side is at +u,
arms hanging). It is a constant table, not learned from data.

* :func:`body_scale`: a torso-length estimate in pixels for each detection (tracking gates moves by it).
* :func:`infer_never_seen`: positions for joints that are missing in every frame of a clip. In every frame
  with enough visible joints, the template is aligned to them by a similarity transform (scale, rotation,
  optionally a mirror when the person faces away), and each never-seen joint is placed at the template's
  offset from the nearest visible joint in the skeleton tree (a hidden wrist hangs from its elbow with the
  template's forearm length). Frames that cannot be aligned take values interpolated over time.

This is a guess from average proportions, not a measurement: callers flag the joints it places
(``Keypoints.inferred``). Models with the missing-joint input (``ModelConfig.joint_mask``, trained with
``joint_dropout``) ignore these placeholders and infer the joints themselves (``lift`` passes them as
missing); older models lift the placeholders, which keeps lifting possible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posediffusion.skeleton import H36M_17

#: Mean standing pose, Human3.6M-17 order, mm (u right, v down, pelvis at the origin, facing the camera).
#: Bone lengths: pelvis-hip 132, thigh 442, shin 454, pelvis-spine 233, spine-thorax 257, thorax-nose 121,
#: nose-head 115, thorax-shoulder 151, upper arm 278, forearm 251.
TEMPLATE_2D = np.array([
    [0.0, 0.0],  # Hip
    [-132.0, 0.0], [-132.0, 442.0], [-132.0, 896.0],  # RHip, RKnee, RAnkle
    [132.0, 0.0], [132.0, 442.0], [132.0, 896.0],  # LHip, LKnee, LAnkle
    [0.0, -233.0],  # Spine
    [0.0, -490.0],  # Thorax
    [0.0, -611.0],  # Neck/Nose
    [0.0, -726.0],  # Head
    [151.0, -490.0], [151.0, -212.0], [151.0, 39.0],  # LShoulder, LElbow, LWrist
    [-151.0, -490.0], [-151.0, -212.0], [-151.0, 39.0],  # RShoulder, RElbow, RWrist
])

#: Template torso length (pelvis to thorax), mm: the unit of :func:`body_scale`.
TEMPLATE_TORSO = float(np.linalg.norm(TEMPLATE_2D[8] - TEMPLATE_2D[0]))

#: Joints that move little relative to each other (trunk and head): preferred for the alignment.
TRUNK_JOINTS = (0, 1, 4, 7, 8, 9, 10, 11, 14)

#: Joint pairs whose pixel distance, divided by the template's, estimates the body's scale.
SCALE_PAIRS = ((0, 8), (11, 14), (1, 4), (11, 4), (14, 1), (8, 10), (1, 2), (4, 5), (2, 3), (5, 6),
               (11, 12), (14, 15))

#: A clip must show at least this many distinct joints for the prior to place the others.
MIN_SEEN_JOINTS = 6


def body_scale(pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Torso length in pixels of each pose: (N, 17, 2), (N, 17) bool -> (N,) float, NaN where unknown.

    Every pair in ``SCALE_PAIRS`` whose joints are both valid gives (pixel length / template length); the
    75th percentile of these ratios times ``TEMPLATE_TORSO`` is the estimate (foreshortening only shortens
    limbs, so a high percentile is closer to the true size than the mean).
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    a, b = (np.array(idx) for idx in zip(*SCALE_PAIRS, strict=True))
    template = np.linalg.norm(TEMPLATE_2D[a] - TEMPLATE_2D[b], axis=-1)  # (P,)
    ratios = np.linalg.norm(pixels[:, a] - pixels[:, b], axis=-1) / template  # (N, P)
    ratios = np.where(valid[:, a] & valid[:, b], ratios, np.nan)
    out = np.full(len(pixels), np.nan)
    known = np.isfinite(ratios).any(axis=1)
    if known.any():
        out[known] = np.nanpercentile(ratios[known], 75, axis=1) * TEMPLATE_TORSO
    out[out <= 0] = np.nan
    return out


def fit_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """Least-squares ``target ~ s * source @ R.T + t`` for (n, 2) point sets (Umeyama), n >= 2.

    ``R`` is a rotation, or a mirror when that fits clearly better (needs 3 points off a line): a person
    seen from behind is the template mirrored. ``None`` when either set has no spread.
    """
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    src, tgt = source - mu_s, target - mu_t
    var = float((src**2).sum())
    if var < 1e-9 or float((tgt**2).sum()) < 1e-6:
        return None
    u, sigma, vt = np.linalg.svd(tgt.T @ src)
    best: tuple[float, float, np.ndarray] | None = None
    for sign in (1.0, -1.0):  # proper rotation first; the mirror must beat it by 10 %
        d = np.diag([1.0, sign * np.sign(np.linalg.det(u @ vt))])
        rotation = u @ d @ vt
        scale = float(np.trace(np.diag(sigma) @ d)) / var
        if scale <= 0:
            continue
        residual = float(((tgt - scale * src @ rotation.T) ** 2).sum())
        if best is None or residual < 0.9 * best[0]:
            best = (residual, scale, rotation)
    if best is None:
        return None
    _, scale, rotation = best
    return scale, rotation, mu_t - scale * mu_s @ rotation.T


def infer_never_seen(pixels: np.ndarray, valid: np.ndarray, joints: Sequence[int]) -> np.ndarray | None:
    """Positions for ``joints`` (never valid) from the template aligned to each frame's valid joints.

    Args:
        pixels: (F, 17, 2) pixels; only entries where ``valid`` is True are read.
        valid: (F, 17) bool, the measured joints.
        joints: the joints to place (normally those with no valid frame).
    Returns:
        (F, len(joints), 2) float64 pixels, or ``None`` when no frame can be aligned (fewer than
        ``MIN_SEEN_JOINTS`` joints seen in the clip, or no frame with two trunk/head joints or three joints).
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if int(valid.any(axis=0).sum()) < MIN_SEEN_JOINTS:
        return None
    hops = H36M_17.hop_distances()
    trunk = np.zeros(pixels.shape[1], bool)
    trunk[list(TRUNK_JOINTS)] = True
    out = np.full((len(pixels), len(joints), 2), np.nan)
    for f in range(len(pixels)):
        seen = valid[f]
        if (seen & trunk).sum() >= 2:
            use = seen & trunk
        elif seen.sum() >= 3:
            use = seen
        else:
            continue
        fit = fit_similarity(TEMPLATE_2D[use], pixels[f, use])
        if fit is None:
            continue
        scale, rotation, _ = fit
        visible = np.flatnonzero(seen)
        for k, j in enumerate(joints):
            anchor = visible[np.argmin(hops[j, visible])]  # nearest visible joint in the tree
            offset = TEMPLATE_2D[j] - TEMPLATE_2D[anchor]
            out[f, k] = pixels[f, anchor] + scale * rotation @ offset
    aligned = np.isfinite(out[:, 0, 0])
    if not aligned.any():
        return None
    frames = np.arange(len(pixels))
    for k in range(len(joints)):
        for d in range(2):
            out[:, k, d] = np.interp(frames, frames[aligned], out[aligned, k, d])
    return out


def place_never_seen(pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Put every joint that no frame shows (``valid`` (F, 17) all False) into ``pixels`` (F, 17, 2), in
    place, by :func:`infer_never_seen`; return the (F, 17) mask of those joints.

    ``ValueError`` ("<joints> cannot be inferred: too little of the body is seen (seen: <joints>; ...)")
    when the prior cannot be aligned.
    """
    never = np.flatnonzero(~valid.any(axis=0))
    inferred = np.zeros(valid.shape, bool)
    if not len(never):
        return inferred
    placed = infer_never_seen(pixels, valid, never)
    if placed is None:
        names = ", ".join(H36M_17.joints[j] for j in never)
        seen = ", ".join(H36M_17.joints[j] for j in np.flatnonzero(valid.any(axis=0))) or "none"
        raise ValueError(f"{names} cannot be inferred: too little of the body is seen (seen: {seen}; needed: "
                         f"at least {MIN_SEEN_JOINTS} joints, two of them on the trunk or head in one frame)")
    pixels[:, never] = placed
    inferred[:, never] = True
    return inferred
