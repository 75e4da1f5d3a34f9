"""Motion of a 2D keypoint window, shared by the motion prompts and the energy regulator
(``prompts.MotionPrompts``, ``energy``), so both see the same velocities: raw finite differences (the
``raw_2d`` features of old checkpoints) and smoothed velocities in body sizes (``bounded`` features,
``smoothed_speed`` energy).

With a missing-joint mask (``ModelConfig.joint_mask``) the ``masked_*`` variants fit only the frames where a
joint is seen and measure the body size over the seen joints, so a missing joint's placeholder coordinates
never enter (a zeroed joint does not read as a jump); their outputs do not depend on those coordinates at
all. Where fewer than two seen frames fall inside a fit's window, the velocity is unknown: 0, flagged
invalid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def temporal_difference(x: Tensor) -> Tensor:
    """Backward finite difference along dim 1, edge-replicated: (B, T, ...) -> (B, T, ...).

    ``d[:, t] = x[:, t] - x[:, t-1]`` for t >= 1 and ``d[:, 0] = d[:, 1]``; all zeros when T == 1.
    """
    if x.shape[1] < 2:
        return torch.zeros_like(x)
    d = x[:, 1:] - x[:, :-1]  # (B, T-1, ...)
    return torch.cat([d[:, :1], d], dim=1)  # (B, T, ...)


def local_velocity(x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """Slope of a Gaussian-weighted local linear fit along time.

    At frame t the fit uses frames t + k inside the sequence, weights exp(-k^2 / (2 sigma^2)), |k| <= 3 sigma;
    near the edges the window is one-sided, so linear motion is recovered exactly at every frame.

    Args:
        x: (B, T, C) signals.
        sigma: Gaussian std in frames (> 0).

    Returns:
        velocity (B, T, C) per frame, and the noise variance factor (T,): for white noise of variance s^2
        in x, the velocity's variance is ``s^2 * factor[t]``. Both in x's dtype, computed in at least
        float32 with autocast off (the moments cancel; half precision would not hold them).
    """
    b, t, c = x.shape
    if t < 2:
        return torch.zeros_like(x), torch.zeros(t, dtype=x.dtype, device=x.device)
    with torch.autocast(x.device.type, enabled=False):
        velocity, variance = _local_fit(x.to(torch.promote_types(x.dtype, torch.float32)), sigma)
    return velocity.to(x.dtype), variance.to(x.dtype)


def _local_fit(x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """:func:`local_velocity` for T >= 2, in x's dtype."""
    b, t, c = x.shape
    radius = max(1, math.ceil(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    kernels = torch.stack([w, w * k, w * k * k, w * w, w * w * k, w * w * k * k])[:, None]  # (6, 1, 2r+1)
    inside = F.pad(torch.ones(1, 1, t, dtype=x.dtype, device=x.device), (radius, radius))  # (1, 1, T+2r)
    s0, s1, s2, q0, q1, q2 = F.conv1d(inside, kernels)[0]  # each (T,): weighted moments of the offsets
    x = x - x[:, :1]  # the slope ignores offsets; without one, constant signals give exactly 0
    signal = F.pad(x.transpose(1, 2).reshape(b * c, 1, t), (radius, radius))  # (B*C, 1, T+2r), zeros outside
    sx, skx = F.conv1d(signal, kernels[:2]).unbind(1)  # each (B*C, T)
    det = s0 * s2 - s1 * s1  # (T,)
    velocity = (s0 * skx - s1 * sx) / det  # (B*C, T)
    variance = (s0 * s0 * q2 - 2 * s0 * s1 * q1 + s1 * s1 * q0) / (det * det)  # (T,)
    return velocity.view(b, c, t).transpose(1, 2), variance


def body_size(x2d: Tensor) -> Tensor:
    """(B, T, J, 2) -> (B,) median over frames of the RMS distance of the joints from their centroid."""
    radius = (x2d - x2d.mean(dim=2, keepdim=True)).square().sum(-1).mean(-1).sqrt()  # (B, T)
    return radius.median(dim=1).values.clamp_min(1e-3)


def body_velocity(x2d: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """Smoothed joint velocities in body sizes per frame: (B, T, J, 2), and the fit's noise factor (T,)."""
    b, t, j, _ = x2d.shape
    velocity, variance = local_velocity(x2d.reshape(b, t, 2 * j), sigma)  # (B, T, 2J), (T,)
    return velocity.view(b, t, j, 2) / body_size(x2d)[:, None, None, None], variance


def masked_local_velocity(x: Tensor, visible: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`local_velocity` fitted through the visible samples only.

    The Gaussian-weighted local linear fit at frame t uses the frames t + k (|k| <= 3 sigma) inside the
    sequence where ``visible`` is true; invisible samples have weight 0 and their values are never read.

    Args:
        x: (B, T, C) signals.
        visible: (B, T, C) bool, True where a sample is measured.
        sigma: Gaussian std in frames (> 0).

    Returns:
        velocity (B, T, C), the noise variance factor (B, T, C) (as :func:`local_velocity`'s, per channel:
        it grows where the window holds fewer samples), and valid (B, T, C) bool: at least two visible
        samples inside the window. Velocity and variance are 0 where not valid. With every sample visible
        this equals :func:`local_velocity` up to rounding.
    """
    if visible.shape != x.shape:
        raise ValueError(f"visible must be {tuple(x.shape)} like x, got {tuple(visible.shape)}")
    visible = visible.bool()
    with torch.autocast(x.device.type, enabled=False):
        velocity, variance, valid = _masked_local_fit(x.to(torch.promote_types(x.dtype, torch.float32)),
                                                      visible, sigma)
    return velocity.to(x.dtype), variance.to(x.dtype), valid


def _masked_local_fit(x: Tensor, visible: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`masked_local_velocity` in x's dtype."""
    b, t, c = x.shape
    radius = max(1, math.ceil(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    kernels = torch.stack([w, w * k, w * k * k, w * w, w * w * k, w * w * k * k,
                           torch.ones_like(w)])[:, None]  # (7, 1, 2r+1); the last counts samples
    seen = F.pad(visible.to(x.dtype).transpose(1, 2).reshape(b * c, 1, t), (radius, radius))  # (B*C, 1, T+2r)
    s0, s1, s2, q0, q1, q2, count = F.conv1d(seen, kernels).unbind(1)  # each (B*C, T), over seen offsets
    first = visible.to(torch.uint8).argmax(dim=1, keepdim=True)  # (B, 1, C) first seen frame (0 if none)
    offset = x.gather(1, first)  # (B, 1, C): the slope ignores offsets; a seen value keeps constants exact
    centred = torch.where(visible, x - offset, torch.zeros_like(x))  # (B, T, C), unseen samples never read
    signal = F.pad(centred.transpose(1, 2).reshape(b * c, 1, t), (radius, radius))  # (B*C, 1, T+2r)
    sx, skx = F.conv1d(signal, kernels[:2]).unbind(1)  # each (B*C, T)
    valid = count > 1.5  # two distinct seen offsets make the fit's determinant positive
    det = torch.where(valid, s0 * s2 - s1 * s1, torch.ones_like(s0))  # (B*C, T)
    zero = torch.zeros_like(det)
    velocity = torch.where(valid, (s0 * skx - s1 * sx) / det, zero)  # (B*C, T)
    variance = torch.where(valid, (s0 * s0 * q2 - 2 * s0 * s1 * q1 + s1 * s1 * q0) / (det * det), zero)

    def per_channel(v: Tensor) -> Tensor:
        return v.view(b, c, t).transpose(1, 2)  # (B*C, T) -> (B, T, C)

    return per_channel(velocity), per_channel(variance), per_channel(valid)


def masked_body_size(x2d: Tensor, visible: Tensor) -> Tensor:
    """:func:`body_size` over the visible joints: (B, T, J, 2), (B, T, J) bool -> (B,).

    Per frame the RMS distance of the visible joints from their centroid (frames with fewer than two
    visible joints are skipped); the median over frames, at least 1e-3 (1 when no frame counts).
    """
    seen = visible[..., None]  # (B, T, J, 1)
    weight = visible.to(x2d.dtype)  # (B, T, J)
    count = weight.sum(-1)  # (B, T)
    points = torch.where(seen, x2d, torch.zeros_like(x2d))
    centroid = points.sum(2) / count.clamp_min(1)[..., None]  # (B, T, 2)
    offsets = torch.where(seen, x2d - centroid[:, :, None], torch.zeros_like(x2d))  # (B, T, J, 2)
    spread = offsets.square().sum(-1)  # (B, T, J)
    radius = (spread.sum(-1) / count.clamp_min(1)).sqrt()  # (B, T)
    radius = torch.where(count >= 2, radius, torch.full_like(radius, float("nan")))
    return radius.nanmedian(dim=1).values.nan_to_num(1.0).clamp_min(1e-3)


def masked_body_velocity(x2d: Tensor, visible: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`body_velocity` through the visible samples (:func:`masked_local_velocity`,
    :func:`masked_body_size`).

    Args:
        x2d: (B, T, J, 2) normalised screen coordinates.
        visible: (B, T, J) bool, True where the joint is seen.
        sigma: Gaussian std in frames (> 0).

    Returns:
        velocity (B, T, J, 2) in body sizes per frame, noise variance factor (B, T, J), valid (B, T, J) bool
        (velocity and variance are 0 where not valid).
    """
    b, t, j, _ = x2d.shape
    if visible.shape != (b, t, j):
        raise ValueError(f"visible must be {(b, t, j)} for x2d of shape {tuple(x2d.shape)}, "
                         f"got {tuple(visible.shape)}")
    visible = visible.bool()
    both = visible[..., None].expand(b, t, j, 2).reshape(b, t, 2 * j)  # (B, T, 2J)
    velocity, variance, valid = masked_local_velocity(x2d.reshape(b, t, 2 * j), both, sigma)  # (B, T, 2J)
    size = masked_body_size(x2d, visible)[:, None, None, None]  # (B, 1, 1, 1)
    return (velocity.view(b, t, j, 2) / size, variance.view(b, t, j, 2)[..., 0],
            valid.view(b, t, j, 2)[..., 0])
