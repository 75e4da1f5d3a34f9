"""Temporal energy regulator (TER): per-frame motion energy of the 2D input -> monotone per-frame gains.

Energy ``smoothed_speed`` (the default; docs/model.md gives the measured figures)::

    v_tj    = slope of a Gaussian-weighted (std sigma frames) local linear fit of x2d_j around frame t
    u_tj    = v_tj / size,  size = median_t RMS_j |x_tj - mean_j x_tj|       (velocity in body sizes)
    nu_t^2  = 2 * NOISE^2 * V_t          V_t: noise variance factor of the fit at frame t (larger at edges)
    speed_t = mean_j sqrt(max(|u_tj - u_t^torso|^2 - nu_t^2, 0))         limbs relative to the torso
              + 1/2 sqrt(max(|u_t^torso|^2 - nu_t^2 / 5, 0))              + half the torso's own speed
    e_t     = log1p(speed_t / SPEED_REFERENCE)

The local fit smooths before differencing, is exact for linear motion and stays unbiased at window edges
(one-sided fits); ``NOISE`` is a detector-noise floor (in body sizes) subtracted in quadrature, so a still
pose with pixel jitter reads as still. Limb motion relative to the torso counts fully, whole-body
translation half. Energy ``raw_2d`` (the original definition, kept for old checkpoints)::

    e_t = G_sigma * log1p((mean_j |v_tj| + mean_j |a_tj|) / 0.01)      raw finite differences of x2d

Both feed the learnable monotone map ``gain_t = sigmoid(softplus(alpha) * e_t + beta)`` in (0, 1). The
gains scale the per-frame modulation of the temporal blocks and are the sampler's ``frame_gain``.

With a missing-joint mask (``visible``, ``smoothed_speed`` only) velocities are fitted through the seen
frames of each joint (``motion.masked_body_velocity``); the means over joints above (limbs, torso) run over
the joints whose velocity is known at frame t, each with its own noise floor (the torso's: the variance of
the mean of its known joints). Missing joints' coordinates never enter.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posediffusion.model.motion import body_velocity, masked_body_velocity, temporal_difference

#: Reference of the ``raw_2d`` energy: 0.01 normalised-screen units per frame.
ENERGY_REFERENCE = 0.01
#: Reference of the ``smoothed_speed`` energy: 0.02 body sizes per frame (the median frame of the CMU
#: test split moves ~0.03, so e spans ~0.1 (still) to ~1.3 (fast); docs/model.md).
SPEED_REFERENCE = 0.02
#: Detector-noise floor of ``smoothed_speed``: per-coordinate 2D noise in body sizes (0.07 of the RMS
#: joint radius is ~6 px for a 330 px tall person, above the 2-6 px of real detectors).
NOISE = 0.07
#: Weight of the torso's own velocity (whole-body translation) against limb motion relative to the torso.
TRANSLATION_WEIGHT = 0.5
#: Torso joints of Human3.6M-17 (pelvis, hips, spine, thorax; the model's joint order): their mean velocity
#: is the body's.
TORSO_JOINTS = (0, 1, 4, 7, 8)
INITIAL_SLOPE = 2.0
INITIAL_OFFSET = -1.5


def motion_energy(x2d: Tensor, sigma: float = 3.0, visible: Tensor | None = None) -> Tensor:
    """``smoothed_speed`` energy: (B, T, J, 2) normalised screen coordinates -> (B, T) >= 0 (see module doc).

    ``visible`` (B, T, J) bool: only seen joints count (:func:`masked_motion_energy`); ``None``: all.
    The input is detached: the energy is a fixed feature of the 2D input (no gradient flows into x2d).
    """
    if visible is not None:
        return masked_motion_energy(x2d, visible, sigma)
    velocity, variance = body_velocity(x2d.detach(), sigma)  # (B, T, J, 2), (T,)
    floor = (2 * NOISE**2 * variance)[:, None]  # (T, 1) expected |noise velocity|^2 per joint
    torso = velocity[:, :, list(TORSO_JOINTS)].mean(dim=2, keepdim=True)  # (B, T, 1, 2)
    relative = ((velocity - torso).square().sum(-1) - floor).clamp_min(0).sqrt().mean(-1)  # (B, T)
    translation = (torso[:, :, 0].square().sum(-1) - floor[:, 0] / len(TORSO_JOINTS)).clamp_min(0).sqrt()
    return torch.log1p((relative + TRANSLATION_WEIGHT * translation) / SPEED_REFERENCE)


def masked_motion_energy(x2d: Tensor, visible: Tensor, sigma: float = 3.0) -> Tensor:
    """``smoothed_speed`` energy of the seen joints: (B, T, J, 2), (B, T, J) bool -> (B, T) >= 0.

    As :func:`motion_energy`, with the means over joints taken over the joints whose velocity is known at
    each frame (``motion.masked_body_velocity``); a frame with none reads as still. Equal to
    :func:`motion_energy` up to rounding when every joint is seen.
    """
    velocity, variance, valid = masked_body_velocity(x2d.detach(), visible, sigma)  # (B,T,J,2), (B,T,J) x2
    floor = 2 * NOISE**2 * variance  # (B, T, J) expected |noise velocity|^2 per joint
    weight = valid.to(velocity.dtype)  # (B, T, J)
    torso_weight = weight[:, :, list(TORSO_JOINTS)]  # (B, T, 5)
    torso_count = torso_weight.sum(-1).clamp_min(1)  # (B, T)
    torso = velocity[:, :, list(TORSO_JOINTS)].sum(2) / torso_count[..., None]  # (B, T, 2), 0 where unknown
    torso_floor = (floor[:, :, list(TORSO_JOINTS)] * torso_weight).sum(-1) / torso_count.square()  # (B, T)
    limbs = ((velocity - torso[:, :, None]).square().sum(-1) - floor).clamp_min(0).sqrt()  # (B, T, J)
    relative = (limbs * weight).sum(-1) / weight.sum(-1).clamp_min(1)  # (B, T)
    translation = (torso.square().sum(-1) - torso_floor).clamp_min(0).sqrt()  # (B, T)
    return torch.log1p((relative + TRANSLATION_WEIGHT * translation) / SPEED_REFERENCE)


def raw_difference_energy(x2d: Tensor, sigma: float = 1.0) -> Tensor:
    """``raw_2d`` energy (old checkpoints): (B, T, J, 2) -> (B, T), log1p of raw |v| + |a|, then smoothed."""
    velocity = temporal_difference(x2d)  # (B, T, J, 2)
    acceleration = temporal_difference(velocity)  # (B, T, J, 2)
    raw = velocity.norm(dim=-1).mean(-1) + acceleration.norm(dim=-1).mean(-1)  # (B, T)
    return gaussian_smooth(torch.log1p(raw / ENERGY_REFERENCE), sigma)


def gaussian_smooth(signal: Tensor, sigma: float) -> Tensor:
    """Smooth (B, T) along T with a normalised Gaussian of std ``sigma`` frames (edge-replicated)."""
    if sigma <= 0 or signal.shape[1] < 2:
        return signal
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=signal.device, dtype=signal.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)  # (1, 1, 2r+1)
    padded = F.pad(signal[:, None, :], (radius, radius), mode="replicate")  # (B, 1, T + 2r)
    return F.conv1d(padded, kernel)[:, 0]  # (B, T)


class TemporalEnergyRegulator(nn.Module):
    """Motion energy and its learnable monotone map to per-frame gains.

    Args:
        sigma: temporal smoothing in frames (the local fit's Gaussian for ``smoothed_speed``, the energy's
            smoothing for ``raw_2d``).
        kind: "smoothed_speed" or "raw_2d" (see the module docstring).

    Shapes:
        x2d (B, T, J, 2) -> energy (B, T) >= 0, gains (B, T) in (0, 1).

    ``slope_raw`` and ``offset`` are excluded from weight decay (:meth:`no_weight_decay`): decay alone
    would pull the map towards gain 1/2 everywhere.
    """

    def __init__(self, sigma: float = 3.0, kind: str = "smoothed_speed") -> None:
        super().__init__()
        if kind not in ("smoothed_speed", "raw_2d"):
            raise ValueError(f"energy kind must be 'smoothed_speed' or 'raw_2d', got {kind!r}")
        self.sigma, self.kind = sigma, kind
        self.slope_raw = nn.Parameter(torch.tensor(math.log(math.expm1(INITIAL_SLOPE))))
        self.offset = nn.Parameter(torch.tensor(INITIAL_OFFSET))

    @staticmethod
    def no_weight_decay() -> set[str]:
        """Names (relative to this module) of the parameters to exclude from weight decay."""
        return {"slope_raw", "offset"}

    def energy(self, x2d: Tensor, visible: Tensor | None = None) -> Tensor:
        """(B, T, J, 2) -> (B, T) motion energy; ``visible`` (B, T, J) bool: of the seen joints only."""
        if self.kind == "raw_2d":
            if visible is not None:
                raise ValueError("the raw_2d energy takes no missing-joint mask (use smoothed_speed)")
            return raw_difference_energy(x2d, self.sigma)
        return motion_energy(x2d, self.sigma, visible)

    @property
    def slope(self) -> Tensor:
        """The map's slope softplus(alpha) > 0 (a scalar tensor)."""
        return F.softplus(self.slope_raw)

    def gain(self, energy: Tensor) -> Tensor:
        """Monotone map (B, T) energy -> (B, T) gains in (0, 1): sigmoid(softplus(alpha) * e + beta)."""
        return torch.sigmoid(self.slope * energy + self.offset)

    def forward(self, x2d: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, T, J, 2) [, visible (B, T, J) bool] -> (energy (B, T), gains (B, T))."""
        energy = self.energy(x2d, visible)
        return energy, self.gain(energy)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, sigma={self.sigma}"
