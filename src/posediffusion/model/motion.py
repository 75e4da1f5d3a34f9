"""Motion of a 2D keypoint window, shared by the motion prompts and the energy regulator
(``prompts.MotionPrompts``, ``energy``), so both see the same velocities: raw finite differences (the
``raw_2d`` features of old checkpoints) and smoothed velocities in body sizes (``bounded`` features,
``smoothed_speed`` energy).
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
