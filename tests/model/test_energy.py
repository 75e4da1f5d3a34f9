"""Tests for posediffusion.model.energy: motion energy (smoothed_speed and raw_2d), smoothing, the gain map.

The detector-noise tests use synthetic data only: a still template pose with 3 px Gaussian jitter, and the
``prepare mocap`` dataset of synthetic motions (``synthetic_dataset`` fixture) in its ``gt`` and ``det``
(detector-like) 2D. ``benchmarks/energy_check.py`` measures the same on the CMU test split.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posediffusion.data.h36m import load_h36m
from posediffusion.model.energy import (
    ENERGY_REFERENCE,
    NOISE,
    SPEED_REFERENCE,
    TORSO_JOINTS,
    TRANSLATION_WEIGHT,
    TemporalEnergyRegulator,
    gaussian_smooth,
    motion_energy,
    raw_difference_energy,
)
from posediffusion.model.motion import body_size, local_velocity
from tests.helpers import TEMPLATE_MM

J = 17
#: 3 px of detector jitter in a 1000 px wide image, in normalised screen units (u / w * 2 - 1).
JITTER_3PX = 0.006


def oscillation(frequency: float, frames: int = 40) -> torch.Tensor:
    """(1, T, J, 2) the joints of a spread pose swinging sinusoidally (frequency cycles per 50 frames)."""
    t = torch.arange(frames, dtype=torch.float32)
    offset = 0.1 * torch.sin(2 * math.pi * frequency * t / 50)  # (T,)
    base = torch.linspace(-0.3, 0.3, J)[:, None].expand(J, 2).clone()
    base[:, 1] = torch.linspace(0.3, -0.3, J)
    swing = torch.zeros(J, 2)
    swing[[12, 13, 15, 16, 2, 3, 5, 6], 0] = torch.tensor([1.0, 2.0, -1.0, -2.0, 1.0, 2.0, -1.0, -2.0])
    return (base + offset[:, None, None] * swing)[None]  # (1, T, J, 2)


def still_pose(batch: int, frames: int) -> torch.Tensor:
    """(B, T, J, 2) the standing template, 330 px tall in a 1000 px image, in normalised coordinates."""
    pose = torch.tensor(TEMPLATE_MM[:, [0, 2]], dtype=torch.float32) * torch.tensor([1.0, -1.0])
    pose = pose / (pose[:, 1].max() - pose[:, 1].min()) * 0.66  # 330 px = 0.66 normalised units tall
    return pose.expand(batch, frames, J, 2).clone()


def test_local_velocity_is_exact_for_linear_motion_at_every_frame():
    t = torch.arange(12.0)[None, :, None]
    x = 0.3 + t * torch.tensor([0.01, -0.02, 0.0])  # (1, 12, 3)
    velocity, variance = local_velocity(x, sigma=3.0)
    assert torch.allclose(velocity, torch.tensor([0.01, -0.02, 0.0]).expand(1, 12, 3), atol=1e-6)
    assert (velocity[..., 2] == 0).all()  # constant signal: exactly 0
    # the fit is noisier where the window is one-sided
    assert variance[0] > 3 * variance[6] and torch.allclose(variance, variance.flip(0))


def test_local_velocity_noise_factor_matches_empirical_variance():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, 15, 1, generator=generator, dtype=torch.float64)
    velocity, variance = local_velocity(noise, sigma=2.0)
    empirical = velocity[:, :, 0].var(dim=0)  # (T,)
    assert torch.allclose(empirical, variance, rtol=0.08)


def test_energy_is_in_body_sizes_and_ignores_position():
    x = oscillation(2.0)
    base = motion_energy(x)
    assert torch.allclose(motion_energy(3.0 * x), base, atol=1e-5)  # a person 3x larger in the image
    assert torch.allclose(motion_energy(x + 0.4), base, atol=1e-5)
    assert body_size(x).shape == (1,)


def test_fast_motion_has_more_energy_and_still_has_none():
    slow, fast = motion_energy(oscillation(0.5)), motion_energy(oscillation(3.0))
    assert fast.mean() > 2 * slow.mean()
    assert (motion_energy(still_pose(2, 10)) == 0).all()
    assert (motion_energy(torch.zeros(2, 10, J, 2)) == 0).all()
    assert (motion_energy(still_pose(1, 1)) == 0).all()  # one frame: no motion


def test_energy_of_translation_by_hand():
    # the whole body moves 0.02 body sizes per frame along x: limbs still relative to the torso, torso
    # speed 0.02 minus the noise floor in quadrature (2 NOISE^2 V_t / 5 for the mean of 5 torso joints)
    x = still_pose(1, 30)
    x = x + (torch.arange(30.0) * 0.02 * body_size(x)[0])[None, :, None, None] * torch.tensor([1.0, 0.0])
    _, variance = local_velocity(x.flatten(2), sigma=3.0)  # (T,)
    torso_speed = (0.02**2 - 2 * NOISE**2 * variance / len(TORSO_JOINTS)).sqrt()
    expected = torch.log1p(TRANSLATION_WEIGHT * torso_speed / SPEED_REFERENCE)[None]
    assert torch.allclose(motion_energy(x), expected, atol=1e-4)


@pytest.mark.parametrize("frames", [9, 27, 81])
def test_still_pose_with_3px_jitter_reads_as_still(frames):
    """Issue 10: raw differences made 3 px of jitter look like motion (gain 0.73 against 0.19 when still)."""
    regulator = TemporalEnergyRegulator()
    clean = still_pose(32, frames)
    jitter = JITTER_3PX * torch.randn(clean.shape, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        still_gain, jitter_gain = regulator(clean)[1], regulator(clean + jitter)[1]
    assert (jitter_gain - still_gain).abs().max() < 0.05
    legacy = TemporalEnergyRegulator(1.0, "raw_2d")  # the old energy fails the same check
    with torch.no_grad():
        assert (legacy(clean + jitter)[1] - legacy(clean)[1]).abs().mean() > 0.3


def test_detector_like_2d_gives_the_gains_of_ground_truth_2d(synthetic_dataset):
    """The same motions from GT 2D and from ``prepare mocap``'s detector-like 2D (white noise, correlated
    jitter, outliers): median |gain difference| < 0.1, and both rank frames by true 3D joint speed."""
    data_dir, name = synthetic_dataset
    regulator, frames = TemporalEnergyRegulator(), 27
    gains, speeds = {}, []
    for keypoints in ("gt", "det"):
        values = []
        for sequence in load_h36m(data_dir, name, keypoints):
            n = len(sequence.keypoints_2d) // frames
            x2d = torch.from_numpy(sequence.keypoints_2d[: n * frames].reshape(n, frames, J, 2))
            with torch.no_grad():
                values.append(regulator(x2d)[1].flatten().numpy())
            if keypoints == "gt":
                velocity = np.gradient(sequence.pose_3d[: n * frames], axis=0)  # (F, J, 3) m per frame
                speeds.append(np.linalg.norm(velocity, axis=-1).mean(-1))
        gains[keypoints] = np.concatenate(values)
    speed = np.concatenate(speeds)
    assert np.median(np.abs(gains["gt"] - gains["det"])) < 0.1
    for keypoints in ("gt", "det"):
        assert spearman(gains[keypoints], speed) >= 0.7, keypoints


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (no ties expected in continuous data)."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def test_energy_takes_no_gradient_from_the_input():
    x2d = oscillation(2.0).requires_grad_(True)
    regulator = TemporalEnergyRegulator()
    energy, gain = regulator(x2d)
    assert not energy.requires_grad
    gain.sum().backward()
    assert x2d.grad is None and regulator.offset.grad != 0


def test_raw_difference_energy_of_linear_motion_by_hand():
    # every joint moves 0.02 per frame along x: speed 0.02, acceleration 0 -> log1p(0.02 / 0.01)
    x2d = (torch.arange(8.0) * 0.02)[None, :, None, None] * torch.tensor([1.0, 0.0]) + torch.zeros(1, 8, J, 2)
    energy = raw_difference_energy(x2d, sigma=0.0)
    assert torch.allclose(energy, torch.full((1, 8), math.log1p(0.02 / ENERGY_REFERENCE)), atol=1e-5)
    assert torch.equal(TemporalEnergyRegulator(0.0, "raw_2d").energy(x2d), energy)


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


def test_map_parameters_are_excluded_from_weight_decay():
    regulator = TemporalEnergyRegulator()
    assert regulator.no_weight_decay() == {name for name, _ in regulator.named_parameters()}
    with pytest.raises(ValueError, match="energy kind"):
        TemporalEnergyRegulator(kind="jitter")
