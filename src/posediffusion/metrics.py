"""Pose metrics: MPJPE, P-MPJPE, N-MPJPE, MPJVE, 3DHP PCK and AUC (docs/metrics.md).

Every metric takes numpy arrays or torch tensors of shape (..., J, 3) (any unit; the result is in the same
unit) and returns the mean over all leading dims as a Python float. ``reduction="none"`` returns the
per-frame values instead (shape = the leading dims, same kind, dtype and device as the input; for torch
inputs gradients flow). An optional boolean ``mask`` over the leading dims picks the frames to include;
with ``reduction="none"`` excluded frames are NaN.

One implementation serves both kinds: numpy inputs are viewed as torch tensors (no copy) and converted back.
Conventions follow VideoPose3D ``common/loss.py`` (MPJPE, P-MPJPE with reflection handling, N-MPJPE,
velocity error) and the official MPI-INF-3DHP scoring (PCK < 150 mm over 14 joints, AUC over 31 thresholds).
PCK and AUC are defined once, on per-joint errors (:func:`pck_of_errors`, :func:`auc_of_errors`): the
pose-level :func:`pck` / :func:`auc` and the official tables of ``eval_3dhp`` both use them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from posediffusion.skeleton import H36M_TO_MPI

Array = Any  # numpy.ndarray | torch.Tensor
Reduction = Literal["mean", "none"]
JointOrder = Literal["h36m", "3dhp"]

#: The 14 joints scored by 3DHP PCK/AUC (head_top .. l_ankle; pelvis, spine and head excluded).
PCK_JOINTS_3DHP: tuple[int, ...] = tuple(range(14))
#: The same 14 joints in Human3.6M-17 order (everything but Hip 0, Spine 7, Neck/Nose 9).
PCK_JOINTS_H36M: tuple[int, ...] = tuple(sorted(H36M_TO_MPI[m] for m in PCK_JOINTS_3DHP))
#: PCK threshold in millimetres (a joint is correct when its error is strictly below it).
PCK_THRESHOLD_MM = 150.0
#: AUC thresholds in millimetres: 0, 5, ..., 150 (31 values, t = 0 included, plain mean).
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(float(t) for t in range(0, 155, 5))
_MM_PER_UNIT = {"mm": 1.0, "m": 1000.0}


def _as_tensor(x: Array) -> torch.Tensor:
    """View ``x`` as a floating torch tensor (numpy arrays share memory; integers become float64)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    return t if t.is_floating_point() else t.to(torch.float64)


def _check_pair(pred: Array, gt: Array, min_dims: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = _as_tensor(pred), _as_tensor(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} != ground truth shape {tuple(g.shape)}")
    if p.ndim < min_dims or p.shape[-1] != 3:
        expected = "(..., J, 3)" if min_dims == 2 else "(..., T, J, 3)"
        raise ValueError(f"poses must be {expected}, got {tuple(p.shape)}")
    return p, g.to(p.dtype)


def _reduce(per_frame: torch.Tensor, like: Array, reduction: Reduction, mask: Array | None) -> Array:
    """Mean of ``per_frame`` over ``mask`` as a float, or the per-frame values as ``like``'s kind."""
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask,
                            device=per_frame.device)
        if m.dtype != torch.bool or m.shape != per_frame.shape:
            raise ValueError(f"mask must be boolean with shape {tuple(per_frame.shape)} (the leading dims), "
                             f"got {m.dtype} {tuple(m.shape)}")
        if reduction == "mean":
            if not bool(m.any()):
                raise ValueError("mask selects no frames")
            return float(per_frame[m].mean())
        per_frame = torch.where(m, per_frame, torch.full_like(per_frame, float("nan")))
    if reduction == "mean":
        return float(per_frame.mean())
    return per_frame if isinstance(like, torch.Tensor) else per_frame.detach().numpy()


def _joint_errors(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) x2 -> (..., J) Euclidean distances."""
    return torch.linalg.vector_norm(pred - gt, dim=-1)


def mpjpe(pred: Array, gt: Array, mask: Array | None = None, reduction: Reduction = "mean") -> Array:
    """Mean per-joint position error (protocol 1): mean Euclidean distance over joints, then frames.

    Args:
        pred, gt: (..., J, 3), same unit. mask: optional (...) bool, frames to include.
    Returns: float (input unit), or (...) per-frame errors with ``reduction="none"``.
    """
    p, g = _check_pair(pred, gt)
    return _reduce(_joint_errors(p, g).mean(-1), pred, reduction, mask)


def procrustes_align(pred: Array, gt: Array) -> Array:
    """Align each (J, 3) prediction to its ground truth by a similarity transform (VideoPose3D ``p_mpjpe``).

    Per frame: translation, uniform scale and rotation minimising the squared error. Reflections are
    excluded as in VideoPose3D: when det(R) < 0 the sign of the last singular vector (and value) is flipped.
    A degenerate frame (all joints at one point) gets zero scale, i.e. collapses onto the GT centroid.

    Args: pred, gt: (..., J, 3). Returns: the aligned prediction (..., J, 3), same kind/dtype/device.
    """
    p, g = _check_pair(pred, gt)
    work = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32  # SVD needs fp32+
    x, y = g.to(work), p.to(work)
    mu_x, mu_y = x.mean(-2, keepdim=True), y.mean(-2, keepdim=True)  # (..., 1, 3)
    x0, y0 = x - mu_x, y - mu_y
    norm_x = torch.linalg.vector_norm(x0, dim=(-2, -1), keepdim=True)  # (..., 1, 1)
    norm_y = torch.linalg.vector_norm(y0, dim=(-2, -1), keepdim=True)
    x0 = x0 / torch.where(norm_x > 0, norm_x, torch.ones_like(norm_x))
    y0 = y0 / torch.where(norm_y > 0, norm_y, torch.ones_like(norm_y))
    u, s, vt = torch.linalg.svd(x0.transpose(-1, -2) @ y0)  # H = X0^T Y0: (..., 3, 3)
    v = vt.transpose(-1, -2)
    sign = torch.sign(torch.linalg.det(v @ u.transpose(-1, -2)))  # (...,)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    v = torch.cat([v[..., :2], v[..., 2:] * sign[..., None, None]], dim=-1)
    s = torch.cat([s[..., :2], s[..., 2:] * sign[..., None]], dim=-1)
    rot = v @ u.transpose(-1, -2)  # (..., 3, 3), row-vector convention: aligned = a * y @ rot + t
    scale = s.sum(-1)[..., None, None] * norm_x / torch.where(norm_y > 0, norm_y, torch.ones_like(norm_y))
    scale = torch.where(norm_y > 0, scale, torch.zeros_like(scale))
    aligned = scale * ((y - mu_y) @ rot) + mu_x
    aligned = aligned.to(p.dtype)
    return aligned if isinstance(pred, torch.Tensor) else aligned.detach().numpy()


def p_mpjpe(pred: Array, gt: Array, mask: Array | None = None, reduction: Reduction = "mean") -> Array:
    """Procrustes-aligned MPJPE (protocol 2): MPJPE after :func:`procrustes_align` per frame.

    Args: pred, gt (..., J, 3); mask (...) bool. Returns: float or (...) per-frame errors.
    """
    p, g = _check_pair(pred, gt)
    aligned = _as_tensor(procrustes_align(p, g))
    return _reduce(_joint_errors(aligned, g).mean(-1), pred, reduction, mask)


def n_mpjpe(pred: Array, gt: Array, mask: Array | None = None, reduction: Reduction = "mean") -> Array:
    """Scale-normalised MPJPE: MPJPE after the per-frame scale ``sum(p.g) / sum(p.p)`` (VideoPose3D).

    Args: pred, gt (..., J, 3); mask (...) bool. Returns: float or (...) per-frame errors.
    """
    p, g = _check_pair(pred, gt)
    pp = (p * p).sum(dim=(-2, -1), keepdim=True)  # (..., 1, 1)
    scale = (p * g).sum(dim=(-2, -1), keepdim=True) / torch.where(pp > 0, pp, torch.ones_like(pp))
    return _reduce(_joint_errors(scale * p, g).mean(-1), pred, reduction, mask)


def mpjve(pred: Array, gt: Array, mask: Array | None = None, reduction: Reduction = "mean") -> Array:
    """Mean per-joint velocity error: MPJPE of the first differences along T (unit per frame).

    Args:
        pred, gt: (..., T, J, 3) with T >= 2.
        mask: optional (..., T) bool over frames; velocity t (frames t -> t+1) counts when both frames do.
    Returns: float, or (..., T - 1) per-velocity errors with ``reduction="none"``.
    """
    p, g = _check_pair(pred, gt, min_dims=3)
    if p.shape[-3] < 2:
        raise ValueError(f"mpjve needs at least 2 frames along T (dim -3), got shape {tuple(p.shape)}")
    vel_err = _joint_errors(torch.diff(p, dim=-3), torch.diff(g, dim=-3)).mean(-1)  # (..., T-1)
    if mask is not None:
        m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
        if m.dtype != torch.bool or m.shape != p.shape[:-2]:
            raise ValueError(f"mask must be boolean with shape {tuple(p.shape[:-2])}, got {m.dtype} "
                             f"{tuple(m.shape)}")
        mask = m[..., 1:] & m[..., :-1]
    return _reduce(vel_err, pred, reduction, mask)


def _pck_joint_errors_mm(pred: Array, gt: Array, joint_order: JointOrder, unit: str) -> torch.Tensor:
    """(..., 17, 3) -> (..., 14) errors in millimetres over the 3DHP PCK joints."""
    if joint_order not in ("h36m", "3dhp"):
        raise ValueError(f"joint_order must be 'h36m' or '3dhp', got {joint_order!r}")
    if unit not in _MM_PER_UNIT:
        raise ValueError(f"unit must be 'mm' or 'm', got {unit!r}")
    p, g = _check_pair(pred, gt)
    if p.shape[-2] != 17:
        raise ValueError(f"PCK needs 17 joints, got shape {tuple(p.shape)}")
    joints = list(PCK_JOINTS_H36M if joint_order == "h36m" else PCK_JOINTS_3DHP)
    return _joint_errors(p[..., joints, :], g[..., joints, :]) * _MM_PER_UNIT[unit]


def pck_of_errors(errors_mm: Array, threshold_mm: float = PCK_THRESHOLD_MM) -> torch.Tensor:
    """Percentage of per-joint errors strictly below ``threshold_mm``, over the last axis.

    Args: errors_mm: (..., N) millimetres (N joints, or every joint of every frame flattened to pool them).
    Returns: (...) float tensor in percent (0-100); NaN where N = 0.
    """
    errors = _as_tensor(errors_mm)
    return (errors < threshold_mm).to(errors.dtype).mean(-1) * 100.0


def auc_of_errors(errors_mm: Array) -> torch.Tensor:
    """Area under the PCK curve: plain mean of :func:`pck_of_errors` over ``AUC_THRESHOLDS_MM``.

    Args: errors_mm: (..., N) millimetres. Returns: (...) float tensor in percent; NaN where N = 0.
    """
    errors = _as_tensor(errors_mm)
    thresholds = torch.tensor(AUC_THRESHOLDS_MM, dtype=errors.dtype, device=errors.device)
    per_threshold = (errors[..., None] < thresholds).to(errors.dtype).mean(-2) * 100.0  # (..., 31)
    return per_threshold.mean(-1)


def pck(pred: Array, gt: Array, threshold_mm: float = PCK_THRESHOLD_MM, joint_order: JointOrder = "h36m",
        unit: Literal["mm", "m"] = "mm", mask: Array | None = None, reduction: Reduction = "mean") -> Array:
    """3DHP percentage of correct keypoints: % of the 14 joints with error strictly below ``threshold_mm``.

    Args:
        pred, gt: (..., 17, 3) root-relative poses in ``unit`` ("mm" or "m"), joints in ``joint_order``.
        threshold_mm: threshold in millimetres whatever ``unit`` is.
        mask: optional (...) bool frames to include.
    Returns: float in percent (0-100), or (...) per-frame percentages with ``reduction="none"``.
    """
    err = _pck_joint_errors_mm(pred, gt, joint_order, unit)  # (..., 14)
    return _reduce(pck_of_errors(err, threshold_mm), pred, reduction, mask)


def auc(pred: Array, gt: Array, joint_order: JointOrder = "h36m", unit: Literal["mm", "m"] = "mm",
        mask: Array | None = None, reduction: Reduction = "mean") -> Array:
    """3DHP area under the PCK curve: mean PCK over thresholds 0, 5, ..., 150 mm (31 values, no trapezoid).

    Args and returns as :func:`pck` (percent).
    """
    err = _pck_joint_errors_mm(pred, gt, joint_order, unit)  # (..., 14)
    return _reduce(auc_of_errors(err), pred, reduction, mask)
