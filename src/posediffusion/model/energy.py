"""Temporal energy regulator (TER): per-frame motion energy of the 2D input -> monotone per-frame gains.

    raw_t  = mean_j |v_tj| + mean_j |a_tj|               v, a: edge-replicated finite differences of x2d
    e_t    = G_sigma * log1p(raw_t / 0.01)                fixed log transform, Gaussian smoothing over t
    gain_t = sigmoid(softplus(alpha) * e_t + beta)        learnable, strictly increasing in e_t, in (0, 1)

0.01 normalised-screen units per frame is roughly a walking joint speed at 50 fps, so e ~ 0.7 when
walking, ~0 when still and ~2 for fast motion. The gains scale the per-frame FiLM modulation of the
temporal blocks inside the denoiser and are handed to the sampler as its ``frame_gain``
(``Denoiser.sampler_gain``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posediffusion.model.motion import temporal_difference

ENERGY_REFERENCE = 0.01
INITIAL_SLOPE = 2.0
INITIAL_OFFSET = -1.5


def motion_energy(x2d: Tensor, sigma: float = 1.0) -> Tensor:
    """Per-frame motion energy: (B, T, J, 2) normalised screen coordinates -> (B, T) >= 0."""
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
        sigma: Gaussian smoothing std in frames (0 = none).

    Shapes:
        x2d (B, T, J, 2) -> gains (B, T) in (0, 1).
    """

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.slope_raw = nn.Parameter(torch.tensor(math.log(math.expm1(INITIAL_SLOPE))))
        self.offset = nn.Parameter(torch.tensor(INITIAL_OFFSET))

    def energy(self, x2d: Tensor) -> Tensor:
        """(B, T, J, 2) -> (B, T) smoothed motion energy."""
        return motion_energy(x2d, self.sigma)

    def gain(self, energy: Tensor) -> Tensor:
        """Monotone map (B, T) energy -> (B, T) gains in (0, 1): sigmoid(softplus(alpha) * e + beta)."""
        return torch.sigmoid(F.softplus(self.slope_raw) * energy + self.offset)

    def forward(self, x2d: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, J, 2) -> (energy (B, T), gains (B, T))."""
        energy = self.energy(x2d)
        return energy, self.gain(energy)
