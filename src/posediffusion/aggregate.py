"""Turn H hypotheses into one pose: P-Agg, J-Agg (three root sources) and the J-Best / P-Best oracles.

Hypotheses are torch tensors (..., H, T, J, 3), root-relative, metres, camera frame; every function
returns (..., T, J, 3) on the hypotheses' device and dtype. The leading dims ``...`` may hold a sampler
step dim K as well as the batch (K, B, H, T, J, 3); keypoints, roots and ground truth only need leading
dims that broadcast against them (e.g. (B, T, J, 2) for (K, B, H, T, J, 3) hypotheses).

See docs/metrics.md. J-Best and P-Best use the ground truth: they are ORACLES, upper bounds that no
real system can reach, and every report must label them so.

Vocabulary: the aggregation names (``AGGREGATIONS``: ``p-agg``, ``j-agg``, ``j-best``, ``p-best``) and J-Agg
root sources (``ROOT_SOURCES``) are defined with the configuration (``config``, torch-free for the command
line); their display labels are defined here, once, and :func:`estimate_label` is what every report, the
lifter and the renderer print.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from posediffusion import camera as cam
from posediffusion.config import AGGREGATIONS, ROOT_SOURCES

RootSource = Literal["estimated", "ground_truth", "weak_perspective"]
_UNDISTORT_ITERATIONS = 20

#: Display label of each aggregation name (``config.AGGREGATIONS``); the oracles say so in their label.
AGGREGATION_LABELS = {"p-agg": "P-Agg", "j-agg": "J-Agg", "j-best": "J-Best (ORACLE)",
                      "p-best": "P-Best (ORACLE)"}
#: How a J-Agg label names its root source (``config.ROOT_SOURCES``).
ROOT_LABELS = {"estimated": "estimated root", "ground_truth": "GT root",
               "weak_perspective": "weak perspective"}


def estimate_label(aggregation: str, root_source: str | None = None) -> str:
    """Report label of an estimate: ``"P-Agg"``, ``"J-Agg (GT root)"``, ``"J-Best (ORACLE)"``, ...

    ``root_source`` is required for ``"j-agg"`` and ignored otherwise.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if aggregation != "j-agg":
        return AGGREGATION_LABELS[aggregation]
    if root_source not in ROOT_SOURCES:
        raise ValueError(f"J-Agg root source must be one of {ROOT_SOURCES}, got {root_source!r}")
    return f"{AGGREGATION_LABELS[aggregation]} ({ROOT_LABELS[root_source]})"


def _check_hypotheses(hyps: torch.Tensor) -> None:
    if not isinstance(hyps, torch.Tensor) or hyps.ndim < 4 or hyps.shape[-1] != 3:
        shape = tuple(hyps.shape) if hasattr(hyps, "shape") else type(hyps).__name__
        raise ValueError(f"hypotheses must be a torch tensor (..., H, T, J, 3), got {shape}")


def _check_trailing(name: str, x: torch.Tensor, expected: tuple[int, ...]) -> None:
    if not isinstance(x, torch.Tensor) or tuple(x.shape[-len(expected):]) != expected:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must be a torch tensor (..., {', '.join(map(str, expected))}), got {shape}")


def _select(hyps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-(frame, joint) pick: hyps (..., H, T, J, 3), index (..., T, J) -> (..., T, J, 3)."""
    lead = torch.broadcast_shapes(hyps.shape[:-4], index.shape[:-2])
    hyps = hyps.expand(*lead, *hyps.shape[-4:])
    idx = index.expand(*lead, *index.shape[-2:])[..., None, :, :, None]  # (..., 1, T, J, 1)
    idx = idx.expand(*lead, 1, *hyps.shape[-3:])  # (..., 1, T, J, 3)
    return torch.gather(hyps, -4, idx).squeeze(-4)


def _nearest(candidates: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Index over H of the candidate nearest the target, per frame and joint.

    candidates (..., H, T, J, C), target (..., T, J, C) -> (..., T, J) long.
    """
    dist = torch.linalg.vector_norm(candidates - target[..., None, :, :, :], dim=-1)  # (..., H, T, J)
    return dist.argmin(dim=-3)


def pose_aggregate(hyps: torch.Tensor) -> torch.Tensor:
    """P-Agg: the mean over hypotheses. (..., H, T, J, 3) -> (..., T, J, 3)."""
    _check_hypotheses(hyps)
    return hyps.mean(dim=-4)


def hypothesis_spread(hyps: Any, center: Any | None = None) -> Any:
    """Per-joint uncertainty: mean Euclidean distance of the hypotheses from ``center``.

    Args:
        hyps: (..., H, T, J, 3) torch tensor or numpy array.
        center: (..., T, J, 3) the estimate to measure from; ``None`` = the hypotheses' mean (P-Agg).

    Returns:
        (..., T, J) in the unit of ``hyps``, of the same kind (numpy in, numpy out).
    """
    as_numpy = not isinstance(hyps, torch.Tensor)
    hyps = torch.as_tensor(hyps)
    _check_hypotheses(hyps)
    center = pose_aggregate(hyps) if center is None else torch.as_tensor(center).to(hyps)
    spread = torch.linalg.vector_norm(hyps - center[..., None, :, :, :], dim=-1).mean(dim=-3)  # (..., T, J)
    return spread.numpy() if as_numpy else spread


def _camera_param(camera: dict[str, Any], key: str, like: torch.Tensor,
                  default: tuple[float, ...] | None = None) -> torch.Tensor:
    """``camera[key]`` (numpy, list or tensor) as a tensor on ``like``'s device and dtype."""
    value = camera.get(key, default)
    if value is None:
        raise ValueError(f"camera dict has no '{key}'")
    return torch.as_tensor(np.asarray(value), dtype=like.dtype, device=like.device)


def _undistort(pixels: torch.Tensor, camera: dict[str, Any]) -> torch.Tensor:
    """(..., 2) distorted pixels -> (..., 2) ideal normalised image coordinates (X/Z, Y/Z).

    Inverts the Human3.6M distortion model of :func:`posediffusion.camera.project_to_pixels` by fixed-point
    iteration (exact when the distortion coefficients are zero; converges for the small H36M distortion).
    """
    f, c = _camera_param(camera, "focal_length", pixels), _camera_param(camera, "center", pixels)
    k = _camera_param(camera, "radial_distortion", pixels, default=(0.0, 0.0, 0.0))
    p = _camera_param(camera, "tangential_distortion", pixels, default=(0.0, 0.0))
    distorted = (pixels - c) / f
    xd, yd = distorted[..., 0], distorted[..., 1]
    x, y = xd, yd
    for _ in range(_UNDISTORT_ITERATIONS):
        r2 = x * x + y * y
        gain = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3 + p[0] * y + p[1] * x
        x, y = (xd - p[1] * r2) / gain, (yd - p[0] * r2) / gain
    return torch.stack([x, y], dim=-1)


def _image_size(camera: dict[str, Any] | None) -> tuple[float, float]:
    if camera is None or "res_w" not in camera or "res_h" not in camera:
        raise ValueError("camera dict with focal_length, center, res_w and res_h is required for this root "
                         "source (use root_source='weak_perspective' without a camera)")
    return float(camera["res_w"]), float(camera["res_h"])


def estimate_root_translation(pose: torch.Tensor, keypoints_2d: torch.Tensor,
                              camera: dict[str, Any]) -> torch.Tensor:
    """Camera-frame root translation per frame from a root-relative pose, its 2D keypoints and intrinsics.

    For every joint, pinhole projection of ``X + T`` onto the ideal image point ``(x, y)`` gives two
    linear equations ``(X + Tx) - x (Z + Tz) = 0`` and ``(Y + Ty) - y (Z + Tz) = 0`` (the brief's
    ``f (X + Tx) - (u - c)(Z + Tz) = 0`` divided by f); T is their least-squares solution over the J joints.
    Lens distortion is first removed from the keypoints (fixed-point inversion of the H36M model), so
    the only approximations left are the pose itself and the algebraic (not reprojection) error, which
    weights joints by their depth.

    Args:
        pose: (..., T, J, 3) root-relative metres, camera frame (e.g. the P-Agg pose).
        keypoints_2d: (..., T, J, 2) normalised screen coordinates (``camera.normalize_screen``).
        camera: camera dict with ``focal_length``, ``center``, optional distortion, ``res_w``, ``res_h``.
    Returns: (..., T, 3) root position in metres, camera frame.
    """
    _check_trailing("pose", pose, (3,))
    _check_trailing("keypoints_2d", keypoints_2d, (pose.shape[-2], 2))
    width, height = _image_size(camera)
    work = pose.dtype if pose.dtype in (torch.float32, torch.float64) else torch.float32
    pixels = cam.image_coordinates(keypoints_2d.to(device=pose.device, dtype=work), width, height)
    ideal = _undistort(pixels, camera)  # (..., T, J, 2)
    xn, yn = ideal[..., 0], ideal[..., 1]
    X, Y, Z = pose[..., 0].to(work), pose[..., 1].to(work), pose[..., 2].to(work)
    n = torch.full_like(xn[..., 0], pose.shape[-2])
    sx, sy, sr = xn.sum(-1), yn.sum(-1), (xn * xn + yn * yn).sum(-1)
    bx, by = xn * Z - X, yn * Z - Y  # right-hand sides (..., T, J)
    zeros = torch.zeros_like(sx)
    # Normal equations A^T A T = A^T b with rows [1, 0, -x] and [0, 1, -y]: (..., T, 3, 3)
    normal = torch.stack([torch.stack([n, zeros, -sx], -1), torch.stack([zeros, n, -sy], -1),
                          torch.stack([-sx, -sy, sr], -1)], -2)
    rhs = torch.stack([bx.sum(-1), by.sum(-1), -(xn * bx + yn * by).sum(-1)], -1)  # (..., T, 3)
    return torch.linalg.solve(normal, rhs[..., None])[..., 0].to(pose.dtype)


def _fit_weak_perspective(pose: torch.Tensor,
                          keypoints_2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``keypoints ~= s * pose[..., :2] + offset`` per frame.

    pose (..., T, J, 3), keypoints_2d (..., T, J, 2) -> scale (..., T), offset (..., T, 2).
    """
    xy = pose[..., :2]
    xy_mean, kp_mean = xy.mean(-2, keepdim=True), keypoints_2d.mean(-2, keepdim=True)  # (..., T, 1, 2)
    xy_c, kp_c = xy - xy_mean, keypoints_2d - kp_mean
    denom = (xy_c * xy_c).sum(dim=(-2, -1))
    scale = (xy_c * kp_c).sum(dim=(-2, -1)) / torch.where(denom > 0, denom, torch.ones_like(denom))
    offset = (kp_mean - scale[..., None, None] * xy_mean)[..., 0, :]
    return scale, offset


def _reproject(hyps: torch.Tensor, keypoints_2d: torch.Tensor, camera: dict[str, Any] | None,
               root: torch.Tensor | None, root_source: RootSource) -> torch.Tensor:
    """Every hypothesis in normalised screen coordinates: (..., H, T, J, 2)."""
    if root_source == "weak_perspective":
        scale, offset = _fit_weak_perspective(pose_aggregate(hyps), keypoints_2d)
        return scale[..., None, :, None, None] * hyps[..., :2] + offset[..., None, :, None, :]
    width, height = _image_size(camera)
    if root_source == "ground_truth":
        if root is None:
            raise ValueError("root_source='ground_truth' needs root (..., T, 3), the GT camera-frame "
                             "root trajectory")
        _check_trailing("root", root, (hyps.shape[-3], 3))
    elif root_source == "estimated":
        root = estimate_root_translation(pose_aggregate(hyps), keypoints_2d, camera)
    else:
        raise ValueError(f"root_source must be 'estimated', 'ground_truth' or 'weak_perspective', "
                         f"got {root_source!r}")
    points = hyps + root.to(hyps)[..., None, :, None, :]  # (..., H, T, J, 3) camera frame
    return cam.normalize_screen(cam.project_to_pixels(points, camera), width, height)


def joint_aggregate(hyps: torch.Tensor, keypoints_2d: torch.Tensor, camera: dict[str, Any] | None = None,
                    root: torch.Tensor | None = None,
                    root_source: RootSource = "estimated") -> torch.Tensor:
    """J-Agg: per joint and frame, the hypothesis whose 2D reprojection is nearest the input keypoint.

    Root sources (how root-relative hypotheses are placed in front of the camera):

    * ``"estimated"`` (default, honest): root translation solved per frame by
      :func:`estimate_root_translation` from the P-Agg pose, the 2D input and the intrinsics.
    * ``"ground_truth"``: ``root`` is the GROUND-TRUTH camera-frame root trajectory. This peeks at the
      ground truth (as the research code does); use it only to compare with published numbers.
    * ``"weak_perspective"``: camera-free (``camera`` may be None): a per-frame scale and 2D offset fitted
      by least squares from the P-Agg pose's (X, Y) to the keypoints reproject every hypothesis.

    Args:
        hyps: (..., H, T, J, 3) root-relative metres, camera frame.
        keypoints_2d: (..., T, J, 2) normalised screen coordinates (the model's input).
        camera: camera dict (``focal_length``, ``center``, distortion, ``res_w``, ``res_h``).
        root: (..., T, 3) metres, only for ``root_source="ground_truth"``.
    Returns: (..., T, J, 3).
    """
    _check_hypotheses(hyps)
    _check_trailing("keypoints_2d", keypoints_2d, (*hyps.shape[-3:-1], 2))
    keypoints_2d = keypoints_2d.to(hyps)
    return _select(hyps, _nearest(_reproject(hyps, keypoints_2d, camera, root, root_source), keypoints_2d))


def joint_best(hyps: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """ORACLE J-Best (uses ground truth): per joint and frame, the hypothesis nearest the GT joint.

    hyps (..., H, T, J, 3), gt (..., T, J, 3) -> (..., T, J, 3).
    """
    _check_hypotheses(hyps)
    _check_trailing("gt", gt, hyps.shape[-3:])
    return _select(hyps, _nearest(hyps, gt.to(hyps)))


def pose_best(hyps: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """ORACLE P-Best (uses ground truth): per frame, the whole hypothesis with the lowest MPJPE.

    hyps (..., H, T, J, 3), gt (..., T, J, 3) -> (..., T, J, 3).
    """
    _check_hypotheses(hyps)
    _check_trailing("gt", gt, hyps.shape[-3:])
    errors = torch.linalg.vector_norm(hyps - gt.to(hyps)[..., None, :, :, :], dim=-1).mean(-1)  # (..., H, T)
    index = errors.argmin(dim=-2)[..., None].expand(*errors.shape[:-2], errors.shape[-1], hyps.shape[-2])
    return _select(hyps, index)
