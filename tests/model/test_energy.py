"""Tests for posediffusion.model.energy: motion energy, smoothing and the monotone gain map."""

from __future__ import annotations

import math

import numpy as np
import torch

from posediffusion.model.energy import (
    ENERGY_REFERENCE,
    TemporalEnergyRegulator,
    gaussian_smooth,
    motion_energy,
)

J = 17


def oscillation(frequency: float, frames: int = 40) -> torch.Tensor:
    """(1, T, J, 2) every joint swinging sinusoidally with ``frequency`` cycles per 50 frames."""
    t = torch.arange(frames, dtype=torch.float32)
    offset = 0.1 * torch.sin(2 * math.pi * frequency * t / 50)  # (T,)
    base = torch.linspace(-0.3, 0.3, J)[None, :, None].expand(1, J, 2)
    return base[:, None] + offset[None, :, None, None]


def test_fast_motion_has_more_energy():
    slow, fast = motion_energy(oscillation(0.5)), motion_energy(oscillation(3.0))
    assert fast.mean() > 2 * slow.mean()
    assert (motion_energy(torch.zeros(2, 10, J, 2)) == 0).all()


def test_energy_of_linear_motion_by_hand():
    # every joint moves 0.02 per frame along x: speed 0.02, acceleration 0 -> log1p(0.02 / 0.01)
    x2d = (torch.arange(8.0) * 0.02)[None, :, None, None] * torch.tensor([1.0, 0.0]) + torch.zeros(1, 8, J, 2)
    energy = motion_energy(x2d, sigma=0.0)
    assert torch.allclose(energy, torch.full((1, 8), math.log1p(0.02 / ENERGY_REFERENCE)), atol=1e-5)


def test_gaussian_smooth_matches_numpy():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(2, 15))
    sigma, radius = 1.5, 5
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    weights /= weights.sum()
    padded = np.pad(signal, ((0, 0), (radius, radius)), mode="edge")
    expected = np.stack([np.convolve(row, weights, mode="valid") for row in padded])
    out = gaussian_smooth(torch.tensor(signal), sigma).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-10)
    assert torch.allclose(gaussian_smooth(torch.ones(1, 6), 1.0), torch.ones(1, 6))


def test_gain_map_is_monotone_for_any_parameters():
    regulator = TemporalEnergyRegulator()
    energies = torch.linspace(0, 5, 50)[None]
    for slope_raw in (-4.0, 0.0, 3.0):
        with torch.no_grad():
            regulator.slope_raw.fill_(slope_raw)
        gains = regulator.gain(energies)
        assert (gains.diff(dim=1) > 0).all()
        assert ((gains > 0) & (gains <= 1)).all()


def test_forward_returns_energy_and_gain_with_gradient():
    regulator = TemporalEnergyRegulator()
    energy, gain = regulator(oscillation(2.0).expand(3, -1, -1, -1))
    assert energy.shape == gain.shape == (3, 40)
    gain.sum().backward()
    assert regulator.slope_raw.grad != 0 and regulator.offset.grad != 0
