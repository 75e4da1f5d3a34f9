"""Tests for posediffusion.diffusion: schedule, q_sample, training loss and the DDIM sampler.

Numerics are checked against independent float64 re-implementations written here, using toy networks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from posediffusion.diffusion import CosineSchedule, ddim_sample, ddim_timesteps, training_loss
from posediffusion.skeleton import H36M_17

J = 17
FLIP = H36M_17.flip_permutation()


@pytest.fixture(scope="module")
def schedule() -> CosineSchedule:
    return CosineSchedule(1000)


def reference_alphas_cumprod(num_steps: int = 1000, s: float = 0.008) -> np.ndarray:
    """Independent float64 cosine schedule, written as an explicit loop."""
    out, prod = [], 1.0
    for t in range(num_steps):
        f_t = math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2
        f_next = math.cos(((t + 1) / num_steps + s) / (1 + s) * math.pi / 2) ** 2
        prod *= 1.0 - min(1.0 - f_next / f_t, 0.999)
        out.append(prod)
    return np.array(out)


AC64 = reference_alphas_cumprod()


def zero_root(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[..., 0, :] = 0.0
    return x


def flip_pose(x: torch.Tensor) -> torch.Tensor:
    out = x[..., list(FLIP), :].clone()
    out[..., 0] = -out[..., 0]
    return out


def random_pose(generator: torch.Generator, *lead: int) -> torch.Tensor:
    return zero_root(0.3 * torch.randn(*lead, J, 3, generator=generator))


class RecordingNet(nn.Module):
    """Toy denoiser x0 = a * x_t + cond["offset"]; records every call's inputs."""

    def __init__(self, a: float = 0.0) -> None:
        super().__init__()
        self.a = a
        self.calls: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = []

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls.append((x_t.clone(), t.clone(), {k: v.clone() for k, v in cond.items()}))
        return self.a * x_t + cond["offset"]


class Lift2DNet(nn.Module):
    """Toy denoiser whose output depends on the 2D input (not flip-equivariant): (u, v, 0.2 u + 0.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        self.inputs.append(x_t.clone())
        uv = cond["x2d"]
        return torch.cat([uv, 0.2 * uv[..., :1] + 0.1], dim=-1) + 0.0 * x_t


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(5 + 1, 16), nn.GELU(), nn.Linear(16, 3))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        t_feat = (t.float() / 1000.0)[:, None, None, None].expand(*x_t.shape[:-1], 1)
        return self.mlp(torch.cat([x_t, cond["x2d"], t_feat], dim=-1))


def offset_cond(batch: int, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"offset": random_pose(torch.Generator().manual_seed(seed), batch, frames)}


def reference_ddim(net, cond, batch, hyp, frames, steps_pairs, eta, seed, scale=1.0, clamp=1.1, noise=1.0):
    """Independent DDIM (float64 scalars) with the documented draw order; no flip, no gain; every noise
    draw multiplied by ``noise`` (0: the sampler's noise-free path)."""
    gen = torch.Generator().manual_seed(seed)
    z = noise * torch.randn(batch * hyp, frames, J, 3, generator=gen).double()
    cond_n = {k: torch.repeat_interleave(v, hyp, dim=0) for k, v in cond.items()}
    for t, t_next in steps_pairs:
        x_in = z.clamp(-clamp * scale, clamp * scale) / scale
        x0 = zero_root(net(x_in.float(), torch.full((batch * hyp,), t), cond_n).double()) * scale
        if t_next < 0:
            return (x0 / scale).float().reshape(batch, hyp, frames, J, 3)
        a, an = AC64[t], AC64[t_next]
        eps = (z - math.sqrt(a) * x0) / math.sqrt(1 - a)
        sigma = eta * math.sqrt((1 - an) / (1 - a)) * math.sqrt(1 - a / an)
        z = math.sqrt(an) * x0 + math.sqrt(1 - an - sigma**2) * eps
        if eta > 0:
            z = z + sigma * noise * torch.randn(z.shape, generator=gen).double()
    raise AssertionError("no final step")


# ----------------------------------------------------------------------------------------------- schedule


def test_schedule_matches_independent_float64_formula(schedule):
    assert schedule.alphas_cumprod.dtype == torch.float32
    assert schedule.betas.dtype == torch.float32
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), AC64, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(schedule.alphas_cumprod_f64, AC64, rtol=1e-12, atol=0)
    np.testing.assert_allclose(schedule.sqrt_one_minus_alphas_cumprod.numpy(), np.sqrt(1 - AC64), rtol=1e-6)
    betas = schedule.betas.numpy()
    assert betas.max() <= 0.999 + 1e-7 and betas.min() > 0
    assert betas[-1] == pytest.approx(0.999, abs=1e-6)  # the cosine schedule hits the clip at the end
    assert np.all(np.diff(schedule.alphas_cumprod.numpy()) < 0)
    assert schedule.state_dict() == {}  # tables follow from num_steps: not stored in checkpoints


def test_q_sample_statistics(schedule):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((3, 20000, 1, 3), 0.5)
    t = torch.tensor([0, 500, 999])
    x_t = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=gen))
    for i, step in enumerate([0, 500, 999]):
        mean, std = x_t[i].mean().item(), x_t[i].std().item()
        assert mean == pytest.approx(0.5 * math.sqrt(AC64[step]), abs=0.01)
        assert std == pytest.approx(math.sqrt(1 - AC64[step]), abs=0.01)


def test_q_sample_rejects_mismatched_noise(schedule):
    with pytest.raises(ValueError, match="noise shape"):
        schedule.q_sample(torch.zeros(2, 4, J, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 4, J, 2))


# ----------------------------------------------------------------------------------------------- training


def test_training_loss_equals_hand_computation(schedule):
    n, frames, scale, clamp, vel_w = 3, 5, 2.0, 1.1, 0.3
    x0 = random_pose(torch.Generator().manual_seed(1), n, frames) + torch.tensor([0.1, -0.2, 0.3])
    cond = offset_cond(n, frames, seed=2)
    net = RecordingNet(a=0.5)
    loss = training_loss(
        net, x0, cond, schedule, scale=scale, clamp=clamp, velocity_weight=vel_w,
        generator=torch.Generator().manual_seed(7),
    )
    # by hand, with the documented draw order: t then noise
    gen = torch.Generator().manual_seed(7)
    t = torch.randint(0, 1000, (n,), generator=gen)
    noise = torch.randn(n, frames, J, 3, generator=gen).double()
    target = (x0 - x0[:, :, :1]).double()
    a = torch.from_numpy(AC64)[t][:, None, None, None]
    z_t = (a.sqrt() * target * scale + (1 - a).sqrt() * noise).clamp(-clamp * scale, clamp * scale)
    pred = zero_root(0.5 * z_t / scale + cond["offset"].double())
    expected = (pred - target).norm(dim=-1).mean()
    expected += vel_w * (pred.diff(dim=1) - target.diff(dim=1)).norm(dim=-1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(net.calls[0][1], t)


def test_training_loss_deterministic_and_trains(schedule):
    torch.manual_seed(0)
    net = TinyMLP()
    x0 = random_pose(torch.Generator().manual_seed(3), 4, 6)
    cond = {"x2d": x0[..., :2].clone()}
    losses = [
        training_loss(net, x0, cond, schedule, generator=torch.Generator().manual_seed(5)) for _ in range(2)
    ]
    assert losses[0].item() == losses[1].item()
    other = training_loss(net, x0, cond, schedule, generator=torch.Generator().manual_seed(6))
    assert other.item() != losses[0].item()
    losses[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_training_loss_rejects_bad_input(schedule):
    net = RecordingNet()
    with pytest.raises(ValueError, match="x0 must be"):
        training_loss(net, torch.zeros(2, 4, J, 2), offset_cond(2, 4), schedule)
    with pytest.raises(ValueError, match="cond\\['offset'\\]"):
        training_loss(net, torch.zeros(2, 4, J, 3), offset_cond(3, 4), schedule)
    with pytest.raises(ValueError, match="2 frames"):
        training_loss(net, torch.zeros(2, 1, J, 3), offset_cond(2, 1), schedule, velocity_weight=1.0)
    with pytest.raises(ValueError, match="smoothing"):
        training_loss(net, torch.zeros(2, 4, J, 3), offset_cond(2, 4), schedule, smoothing=1.5)
    with pytest.raises(ValueError, match="frame_gain"):
        training_loss(net, torch.zeros(2, 4, J, 3), offset_cond(2, 4), schedule, smoothing=0.5,
                      frame_gain=torch.ones(2, 5))


def test_training_loss_applies_the_samplers_smoothing(schedule):
    """With smoothing > 0 the loss scores smooth_x0(net's x0), and the gain receives gradient."""
    n, frames = 2, 6
    x0 = random_pose(torch.Generator().manual_seed(1), n, frames)
    cond = offset_cond(n, frames, seed=2)
    gain = torch.rand(n, frames, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    loss = training_loss(RecordingNet(a=0.5), x0, cond, schedule, smoothing=0.5, frame_gain=gain,
                         generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)  # by hand: the same draws, then the [1, 2, 1] / 4 blend
    t = torch.randint(0, 1000, (n,), generator=gen)
    noise = torch.randn(n, frames, J, 3, generator=gen)
    a = torch.from_numpy(AC64)[t].float()[:, None, None, None]
    pred = zero_root(0.5 * (a.sqrt() * x0 + (1 - a).sqrt() * noise).clamp(-1.1, 1.1) + cond["offset"])
    padded = torch.cat([pred[:, :1], pred, pred[:, -1:]], dim=1)
    smoothed = 0.25 * padded[:, :-2] + 0.5 * pred + 0.25 * padded[:, 2:]
    w = 0.5 * (1 - gain.detach())[:, :, None, None]
    expected = (pred + w * (smoothed - pred) - x0).norm(dim=-1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert gain.grad is not None and gain.grad.abs().sum() > 0
    plain = training_loss(RecordingNet(a=0.5), x0, cond, schedule, generator=torch.Generator().manual_seed(7))
    constant = training_loss(RecordingNet(a=0.5), x0, cond, schedule, smoothing=0.5,
                             generator=torch.Generator().manual_seed(7))
    assert plain.item() != loss.item() and constant.item() not in (plain.item(), loss.item())


# ----------------------------------------------------------------------------------------------- sampler


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 1) == [(999, -1)]
    assert ddim_timesteps(1000, 4) == [(999, 749), (749, 499), (499, 249), (249, -1)]
    assert ddim_timesteps(1000, 3) == [(999, 665), (665, 332), (332, -1)]  # truncation, as D3DP
    full = ddim_timesteps(1000, 1000)
    assert full[0] == (999, 998) and full[-1] == (0, -1) and len(full) == 1000
    with pytest.raises(ValueError):
        ddim_timesteps(1000, 0)


@pytest.mark.parametrize("steps", [1, 3, 10])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_constant_pose_net_returns_the_pose(schedule, steps, eta):
    pose = random_pose(torch.Generator().manual_seed(4), 2, 5)
    out = ddim_sample(
        RecordingNet(a=0.0), {"offset": pose}, (2, 5, J, 3), schedule, num_hypotheses=3, steps=steps,
        eta=eta, generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (2, 3, 5, J, 3)
    torch.testing.assert_close(out, pose[:, None].expand_as(out), atol=1e-6, rtol=0)


def test_single_step_returns_network_x0_at_last_timestep(schedule):
    b, h, frames = 2, 3, 4
    cond = offset_cond(b, frames)
    net = RecordingNet(a=0.5)
    out = ddim_sample(net, cond, (b, frames, J, 3), schedule,
                      num_hypotheses=h, steps=1, generator=torch.Generator().manual_seed(9))
    x_T = torch.randn(b * h, frames, J, 3, generator=torch.Generator().manual_seed(9))
    expected = zero_root(0.5 * x_T.clamp(-1.1, 1.1) + cond["offset"].repeat_interleave(h, 0))
    assert torch.equal(out, expected.view(b, h, frames, J, 3))
    assert len(net.calls) == 1 and torch.all(net.calls[0][1] == 999)


@pytest.mark.parametrize("eta,scale", [(0.0, 1.0), (1.0, 1.0), (0.5, 2.0)])
def test_matches_reference_ddim(schedule, eta, scale):
    b, h, frames = 2, 2, 3
    cond = offset_cond(b, frames, seed=3)
    out = ddim_sample(RecordingNet(a=0.7), cond, (b, frames, J, 3), schedule, num_hypotheses=h, steps=4,
                      eta=eta, scale=scale, generator=torch.Generator().manual_seed(11))
    pairs = [(999, 749), (749, 499), (499, 249), (249, -1)]
    expected = reference_ddim(RecordingNet(a=0.7), cond, b, h, frames, pairs, eta, 11, scale=scale)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_antithetic_pairs_mirror_the_first_noise(schedule):
    # K = 1: hypothesis 2i sees the noise n, 2i+1 sees -n; an odd H's last one its own draw; one draw of
    # (B * ceil(H/2), T, J, 3) normals in that order (window-major)
    b, h, frames = 2, 3, 4
    cond = offset_cond(b, frames)
    out = ddim_sample(RecordingNet(a=0.5), cond, (b, frames, J, 3), schedule, num_hypotheses=h, steps=1,
                      generator=torch.Generator().manual_seed(9), antithetic=True)
    draw = torch.randn(b, 2, frames, J, 3, generator=torch.Generator().manual_seed(9))
    x_T = torch.stack([draw[:, 0], -draw[:, 0], draw[:, 1]], 1)  # (B, H, T, J, 3)
    expected = zero_root(0.5 * x_T.clamp(-1.1, 1.1) + cond["offset"][:, None])
    assert torch.equal(out, expected)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_antithetic_pair_mean_is_the_noise_free_path_of_an_affine_sampler(schedule, eta):
    # the toy net is linear in x_t and nothing is clamped (clamp 1e6), so the whole sampler is affine in its
    # noise: the mean of a pair is the path without noise, at every step count
    b, frames, steps = 2, 3, 5
    cond = offset_cond(b, frames, seed=2)
    out = ddim_sample(RecordingNet(a=0.7), cond, (b, frames, J, 3), schedule, num_hypotheses=4, steps=steps,
                      eta=eta, clamp=1e6, generator=torch.Generator().manual_seed(5), antithetic=True)
    pairs = ddim_timesteps(1000, steps)
    noise_free = reference_ddim(RecordingNet(a=0.7), cond, b, 1, frames, pairs, eta, 0, clamp=1e6, noise=0.0)
    for first in (0, 2):
        torch.testing.assert_close(out[:, first : first + 2].mean(1), noise_free[:, 0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[:, 0], out[:, 1], atol=1e-3)  # the pair still differs
    assert not torch.allclose(out[:, 0], out[:, 2], atol=1e-3)  # and pairs differ from each other
    independent = ddim_sample(RecordingNet(a=0.7), cond, (b, frames, J, 3), schedule, num_hypotheses=4,
                              steps=steps, eta=eta, clamp=1e6, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(independent[:, :2].mean(1), noise_free[:, 0], atol=1e-3)


def test_antithetic_with_one_hypothesis_is_the_plain_sampler(schedule):
    cond = offset_cond(2, 3)
    runs = [ddim_sample(RecordingNet(a=0.7), cond, (2, 3, J, 3), schedule, num_hypotheses=1, steps=3,
                        generator=torch.Generator().manual_seed(1), antithetic=anti)
            for anti in (False, True)]
    assert torch.equal(*runs)


def test_hypotheses_are_folded_into_one_call_per_step(schedule):
    b, h, frames, steps = 3, 4, 2, 5
    cond = offset_cond(b, frames)
    net = RecordingNet(a=0.5)
    out = ddim_sample(net, cond, (b, frames, J, 3), schedule, num_hypotheses=h, steps=steps,
                      generator=torch.Generator().manual_seed(0))
    assert len(net.calls) == steps
    for x_t, t, cond_n in net.calls:
        assert x_t.shape == (b * h, frames, J, 3) and t.shape == (b * h,)
        for row in range(b * h):  # row b * H + h belongs to window b
            assert torch.equal(cond_n["offset"][row], cond["offset"][row // h])
    # hypotheses come from independent noise: all different, all close to their window's pose
    for i in range(h):
        for j in range(i + 1, h):
            assert not torch.allclose(out[:, i], out[:, j], atol=1e-3)


def test_flip_tta_averages_unflipped_prediction_in_one_call(schedule):
    b, h, frames, steps = 2, 3, 4, 3
    uv = 0.5 * torch.randn(b, frames, J, 2, generator=torch.Generator().manual_seed(1))
    uv_flipped = uv[:, :, list(FLIP)].clone()
    uv_flipped[..., 0] *= -1
    cond = {"x2d": torch.cat([uv, uv_flipped])}  # B originals, then the B flipped
    net = Lift2DNet()
    out = ddim_sample(net, cond, (b, frames, J, 3), schedule, num_hypotheses=h, steps=steps,
                      flip_permutation=FLIP, generator=torch.Generator().manual_seed(2))
    assert len(net.inputs) == steps
    for x_in in net.inputs:
        assert x_in.shape == (2 * b * h, frames, J, 3)
        torch.testing.assert_close(x_in[b * h:], flip_pose(x_in[: b * h]))

    def lift(p):
        return zero_root(torch.cat([p, 0.2 * p[..., :1] + 0.1], dim=-1))

    expected = 0.5 * (lift(uv) + flip_pose(lift(uv_flipped)))  # (B, T, J, 3)
    torch.testing.assert_close(out, expected[:, None].expand_as(out), atol=1e-6, rtol=0)
    # the plain prediction differs (the toy net is not flip-equivariant), so averaging did something
    assert not torch.allclose(expected, lift(uv), atol=1e-3)


def test_same_generator_same_samples_and_batch_independence(schedule):
    frames = 4
    cond = offset_cond(2, frames, seed=5)

    def sample(c, seed):
        return ddim_sample(RecordingNet(a=0.5), c, (2, frames, J, 3), schedule, num_hypotheses=2, steps=4,
                           generator=torch.Generator().manual_seed(seed))

    first, again, other_seed = sample(cond, 0), sample(cond, 0), sample(cond, 1)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other_seed, atol=1e-3)
    changed = {"offset": cond["offset"].clone()}
    changed["offset"][1] += 0.3
    moved = sample(changed, 0)
    assert torch.equal(moved[0], first[0])
    assert not torch.allclose(moved[1], first[1], atol=1e-3)


def test_return_all_steps(schedule):
    cond = offset_cond(2, 3)

    def sample(return_all_steps):
        return ddim_sample(RecordingNet(a=0.5), cond, (2, 3, J, 3), schedule, num_hypotheses=2, steps=4,
                           generator=torch.Generator().manual_seed(3), return_all_steps=return_all_steps)

    every, last = sample(True), sample(False)
    assert every.shape == (4, 2, 2, 3, J, 3)
    assert torch.equal(every[-1], last)
    assert not torch.allclose(every[0], every[-1], atol=1e-4)


def _gain_sample(schedule, cond, eta, smoothing, gain=None, seed=0, steps=6, h=2):
    b, frames = cond["offset"].shape[:2]
    gen = torch.Generator().manual_seed(seed)
    return ddim_sample(RecordingNet(a=0.5), cond, (b, frames, J, 3), schedule, num_hypotheses=h,
                       steps=steps, eta=eta, smoothing=smoothing, frame_gain=gain, generator=gen)


def test_unit_gain_is_plain_ddim(schedule):
    cond = offset_cond(2, 6)
    plain = _gain_sample(schedule, cond, eta=1.0, smoothing=0.0)
    gained = _gain_sample(schedule, cond, eta=1.0, smoothing=1.0, gain=torch.ones(2, 6))
    torch.testing.assert_close(gained, plain, atol=1e-6, rtol=0)


def test_smoothing_without_gain_is_constant_per_frame(schedule):
    """No gain + smoothing s: every frame blended with weight s, i.e. the same as a gain of 0 with s."""
    cond = offset_cond(2, 6)
    constant = _gain_sample(schedule, cond, eta=0.0, smoothing=0.4)
    zero_gain = _gain_sample(schedule, cond, eta=0.0, smoothing=0.4, gain=torch.zeros(2, 6))
    torch.testing.assert_close(constant, zero_gain, atol=1e-6, rtol=0)
    assert not torch.allclose(constant, _gain_sample(schedule, cond, eta=0.0, smoothing=0.0), atol=1e-4)


def test_constant_gain_scales_noise_reinjection(schedule):
    cond = offset_cond(2, 6)
    reference = _gain_sample(schedule, cond, eta=0.4, smoothing=0.0)
    gained = _gain_sample(schedule, cond, eta=0.8, smoothing=0.0, gain=torch.full((2, 6), 0.5))
    torch.testing.assert_close(gained, reference, atol=1e-5, rtol=1e-5)


def test_gain_outside_eta_only_sets_the_smoothing_weight(schedule):
    """``gain_in_eta=False``: every frame re-injects noise with eta, the gain only weighs the smoothing;
    so with no smoothing any gain is plain DDIM, and a gain of 0 is the constant smoothing s."""
    cond = offset_cond(2, 6)
    gain = torch.full((2, 6), 0.3)

    def sample(smoothing, frame_gain, gain_in_eta=True):
        return ddim_sample(RecordingNet(a=0.5), cond, (2, 6, J, 3), schedule, num_hypotheses=2, steps=6,
                           eta=1.0, smoothing=smoothing, frame_gain=frame_gain, gain_in_eta=gain_in_eta,
                           generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(sample(0.0, gain, gain_in_eta=False), sample(0.0, None), atol=1e-6, rtol=0)
    assert not torch.allclose(sample(0.0, gain), sample(0.0, None), atol=1e-4)  # with eta * g: differs
    torch.testing.assert_close(sample(0.6, torch.zeros(2, 6), gain_in_eta=False), sample(0.6, None),
                               atol=1e-6, rtol=0)
    # gain 0.3 outside eta = constant weight 0.6 * (1 - 0.3) = 0.42 with eta unchanged
    torch.testing.assert_close(sample(0.6, gain, gain_in_eta=False), sample(0.42, None), atol=1e-5, rtol=0)


def test_smoothing_reduces_jitter_on_slow_frames_only(schedule):
    frames = 24
    pose = random_pose(torch.Generator().manual_seed(8), 1, 1).expand(1, frames, J, 3).contiguous()
    gain = torch.ones(1, frames)
    gain[:, : frames // 2] = 0.05  # slow first half, fast second half
    cond = {"offset": pose}

    def jitter(x, sl):
        return x[..., sl, :, :].diff(dim=-3).norm(dim=-1).mean().item()

    sharp = _gain_sample(schedule, cond, eta=1.0, smoothing=0.0, gain=gain, h=8)
    smooth = _gain_sample(schedule, cond, eta=1.0, smoothing=1.0, gain=gain, h=8)
    slow, fast = slice(0, frames // 2 - 1), slice(frames // 2 + 2, frames)
    assert jitter(smooth, slow) < 0.7 * jitter(sharp, slow)
    assert jitter(smooth, fast) == pytest.approx(jitter(sharp, fast), rel=0.25)


def test_samples_follow_cond_dtype(schedule):
    torch.manual_seed(0)
    net = TinyMLP().double()
    cond = {"x2d": torch.randn(2, 5, J, 2, dtype=torch.float64)}
    out = ddim_sample(net, cond, (2, 5, J, 3), schedule, num_hypotheses=3, steps=2,
                      generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == (2, 3, 5, J, 3)
    assert torch.isfinite(out).all() and torch.all(out[..., 0, :] == 0)
    half = {"offset": torch.zeros(2, 5, J, 3, dtype=torch.bfloat16)}
    out = ddim_sample(RecordingNet(a=0.5), half, (2, 5, J, 3), schedule, num_hypotheses=2, steps=3,
                      smoothing=0.5, frame_gain=torch.full((2, 5), 0.5),
                      generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_sampler_rejects_bad_input(schedule):
    cond = offset_cond(2, 4)
    net = RecordingNet()

    def call(c=cond, shape=(2, 4, J, 3), **kw):
        kw = {"num_hypotheses": 2, "steps": 2, **kw}
        return ddim_sample(net, c, shape, schedule, **kw)

    with pytest.raises(ValueError, match="shape"):
        call(shape=(2, 4, J, 2))
    with pytest.raises(ValueError, match="leading dim"):
        call(flip_permutation=FLIP)  # flip needs 2B cond rows
    with pytest.raises(ValueError, match="permutation"):
        call(c={"offset": torch.cat([cond["offset"]] * 2)}, flip_permutation=[0] * J)
    with pytest.raises(ValueError, match="eta"):
        call(eta=-0.5)
    with pytest.raises(ValueError, match="frame_gain"):
        call(frame_gain=torch.full((2, 4), 1.5))
    with pytest.raises(ValueError, match="frame_gain"):
        call(frame_gain=torch.ones(2, 5))
    with pytest.raises(ValueError, match="frame_gain"):  # (B, T), not the 2B rows of a flipped cond
        call(c={"offset": torch.cat([cond["offset"]] * 2)}, flip_permutation=FLIP,
             frame_gain=torch.ones(4, 4))
    with pytest.raises(ValueError, match="steps"):
        call(steps=0)


def test_flip_with_unit_gain_is_plain_ddim(schedule):
    b, frames = 2, 5
    offset = offset_cond(b, frames)["offset"]
    cond = {"offset": torch.cat([offset, flip_pose(offset)])}  # 2B rows; the gain is the B windows'

    def sample(gain, smoothing):
        return ddim_sample(RecordingNet(a=0.5), cond, (b, frames, J, 3), schedule, num_hypotheses=2, steps=4,
                           smoothing=smoothing, flip_permutation=FLIP, frame_gain=gain,
                           generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(sample(torch.ones(b, frames), 1.0), sample(None, 0.0), atol=1e-6, rtol=0)


def test_sample_timesteps_uniform_is_torch_randint():
    from posediffusion.diffusion import sample_timesteps

    got = sample_timesteps(64, 1000, "uniform", torch.Generator().manual_seed(3))
    want = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, want)


def test_sample_timesteps_linear_density_proportional_to_t():
    from posediffusion.diffusion import sample_timesteps

    t = sample_timesteps(400_000, 1000, "linear", torch.Generator().manual_seed(0)).double()
    assert t.min() >= 0 and t.max() <= 999
    # P(t < a) = (a / N)^2 for t = floor(N sqrt(u)): 0.01 below 100, 0.25 below 500, 0.19 at or above 900
    assert abs((t < 100).double().mean().item() - 0.01) < 0.002
    assert abs((t < 500).double().mean().item() - 0.25) < 0.004
    assert abs((t >= 900).double().mean().item() - 0.19) < 0.004
    assert abs(t.mean().item() - (2 / 3 * 1000 - 0.5)) < 2.0  # E[floor(N sqrt u)] ~ 2N/3 - 1/2


def test_sample_timesteps_rejects_unknown_kind():
    from posediffusion.diffusion import sample_timesteps

    with pytest.raises(ValueError, match="timestep_sampling"):
        sample_timesteps(4, 1000, "cosine")
