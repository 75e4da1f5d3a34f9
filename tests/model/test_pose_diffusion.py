"""Tests for posediffusion.model.pose_diffusion: the public PoseDiffusion class end to end."""

from __future__ import annotations

import pytest
import torch

from posediffusion import PoseDiffusion, diffusion
from posediffusion.config import CONDITIONING_KINDS, PRESETS
from posediffusion.skeleton import H36M_17
from tests.helpers import make_tiny_model as tiny  # a fresh seeded `tiny` model per call

J = 17


def windows(model: PoseDiffusion, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (B, T, J, 2) 2D and matching root-relative (B, T, J, 3) 3D windows (orthographic 2D)."""
    g = torch.Generator().manual_seed(seed)
    frames = model.config.model.frames
    pose = 0.3 * torch.randn(batch, 1, J, 3, generator=g)
    x3d = pose + 0.02 * torch.randn(batch, frames, J, 3, generator=g)
    x3d = x3d - x3d[:, :, :1]
    return 0.5 * x3d[..., :2], x3d


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_sample_shapes_for_presets(name):
    model = PoseDiffusion.from_preset(name)
    x2d, _ = windows(model, batch=1)
    out = model.sample(x2d, num_hypotheses=2, steps=1, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 2, model.config.model.frames, J, 3)
    assert (out[..., 0, :] == 0).all()


def test_temporal_patch_samples_and_trains_end_to_end():
    """p = 3 on the tiny preset (9 frames -> 3 tokens per joint): K-step sampling with flip gives every frame,
    and one optimiser step on the training loss changes the prediction."""
    model = PoseDiffusion.from_preset("tiny", temporal_patch=3)
    x2d, x3d = windows(model)
    out = model.sample(x2d, num_hypotheses=2, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 9, J, 3) and torch.isfinite(out).all() and (out[..., 0, :] == 0).all()
    before = model.sample(x2d, steps=1, flip=False, generator=torch.Generator().manual_seed(1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    model.training_loss(x2d, x3d, generator=torch.Generator().manual_seed(2)).backward()
    optimiser.step()
    after = model.sample(x2d, steps=1, flip=False, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(before, after)


def test_return_all_steps_shape():
    model = tiny()
    x2d, _ = windows(model)
    out = model.sample(x2d, num_hypotheses=3, steps=4, return_all_steps=True)
    assert out.shape == (4, 2, 3, 9, J, 3) and (out[..., 0, :] == 0).all()


def test_presets_and_overrides():
    assert set(PRESETS) >= {"paper", "base", "small", "tiny"}
    model = PoseDiffusion.from_preset("tiny", graph=False, eta=0.0, width=16)
    assert not model.config.model.graph and model.config.diffusion.eta == 0.0
    assert model.denoiser.learned_adjacency() is None
    with pytest.raises(ValueError, match="unknown config field"):
        PoseDiffusion.from_preset("tiny", wdith=16)
    with pytest.raises(ValueError, match="unknown preset"):
        PoseDiffusion.from_preset("huge")
    rebuilt = PoseDiffusion.from_config(model.config)
    assert rebuilt.count_parameters() == model.count_parameters()


def test_schedule_is_a_submodule():
    model = tiny()
    assert any(m is model.schedule for m in model.modules())
    assert model.schedule.num_steps == 1000


def test_input_validation():
    model = tiny()
    x2d, x3d = windows(model)
    with pytest.raises(ValueError, match="windows"):
        model.sample(torch.zeros(1, 10, J, 2))
    with pytest.raises(ValueError, match="17, 2"):
        model.sample(torch.zeros(1, 9, 16, 2))
    with pytest.raises(ValueError, match="17, 2"):
        model.sample(torch.zeros(9, J, 2))
    bad = x2d.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.sample(bad)
    with pytest.raises(ValueError, match=">= 1"):
        model.sample(x2d, num_hypotheses=0)
    with pytest.raises(ValueError, match=">= 1"):
        model.sample(x2d, steps=0)
    with pytest.raises(ValueError, match="x3d"):
        model.training_loss(x2d, x3d[:, :, :16])


def test_no_information_between_batch_elements():
    model = tiny()
    x2d, _ = windows(model, batch=3)
    out = model.sample(x2d, num_hypotheses=4, steps=3, generator=torch.Generator().manual_seed(5))
    changed = x2d.clone()
    changed[1] = changed[1] * -2.0 + 0.3
    out_changed = model.sample(changed, num_hypotheses=4, steps=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out[0], out_changed[0]) and torch.equal(out[2], out_changed[2])
    assert not torch.allclose(out[1], out_changed[1])


def test_same_seed_same_samples():
    model = tiny()
    x2d, _ = windows(model)
    a = model.sample(x2d, num_hypotheses=2, steps=2, generator=torch.Generator().manual_seed(1))
    b = model.sample(x2d, num_hypotheses=2, steps=2, generator=torch.Generator().manual_seed(1))
    c = model.sample(x2d, num_hypotheses=2, steps=2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[:, 0], a[:, 1])  # hypotheses differ


def test_antithetic_follows_the_config_unless_asked():
    model = tiny()
    x2d, _ = windows(model)

    def sample(m, **kw):
        return m.sample(x2d, num_hypotheses=2, steps=2, generator=torch.Generator().manual_seed(3), **kw)

    plain, paired = sample(model, antithetic=False), sample(model, antithetic=True)
    assert not torch.equal(plain, paired)
    assert model.config.diffusion.antithetic and torch.equal(sample(model), paired)  # the default: pairs
    model.config = model.config.with_overrides(antithetic=False)
    assert torch.equal(sample(model), plain)
    assert torch.equal(sample(model, antithetic=True), paired)


def test_one_ddim_step_returns_the_network_x0():
    """K=1 without flip, regulator and smoothing: output = net(clamp(x_T), t=999), x_T the first draw."""
    model = tiny(energy_regulator=False, smoothing=0.0)
    x2d, _ = windows(model)
    out = model.sample(x2d, num_hypotheses=1, steps=1, flip=False, generator=torch.Generator().manual_seed(3))
    x_T = torch.randn(2, 9, J, 3, generator=torch.Generator().manual_seed(3)).clamp(-1.1, 1.1)
    with torch.no_grad():
        x0 = model.denoiser(x_T, torch.full((2,), 999), model.denoiser.encode_condition(x2d))
    assert torch.allclose(out[:, 0], x0, atol=1e-6)


def test_flip_averages_with_the_mirrored_input():
    model = tiny(energy_regulator=False, smoothing=0.0)
    x2d, _ = windows(model)
    out = model.sample(x2d, steps=1, flip=True, generator=torch.Generator().manual_seed(3))
    x_T = torch.randn(2, 9, J, 3, generator=torch.Generator().manual_seed(3)).clamp(-1.1, 1.1)
    perm = torch.from_numpy(H36M_17.flip_permutation())
    mirror3d, mirror2d = torch.tensor([-1.0, 1.0, 1.0]), torch.tensor([-1.0, 1.0])
    net = model.denoiser
    with torch.no_grad():
        plain = net(x_T, torch.full((2,), 999), net.encode_condition(x2d))
        cond_flipped = net.encode_condition(x2d[:, :, perm] * mirror2d)
        flipped = net(x_T[:, :, perm] * mirror3d, torch.full((2,), 999), cond_flipped)
    expected = 0.5 * (plain + flipped[:, :, perm] * mirror3d)
    assert torch.allclose(out[:, 0], expected, atol=1e-6)


def test_sampler_gets_the_gain_of_the_original_windows(monkeypatch):
    """With flip the condition holds 2B rows; the sampler's explicit frame_gain is the B originals' gain."""
    seen = []
    real = diffusion.ddim_sample

    def spy(*args, **kwargs):
        seen.append(kwargs["frame_gain"])
        return real(*args, **kwargs)

    monkeypatch.setattr(diffusion, "ddim_sample", spy)
    model = tiny()
    x2d, _ = windows(model)
    model.sample(x2d, steps=2, flip=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.denoiser.sampler_gain(model.denoiser.encode_condition(x2d))  # (B, T)
    assert seen[0].shape == (2, 9) and torch.allclose(seen[0], expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(model.frame_gains(x2d), seen[0], atol=1e-6)  # the public API gives the same
    tiny(energy_regulator=False).sample(x2d, steps=1, generator=torch.Generator().manual_seed(0))
    assert seen[1] is None


def test_frame_gains():
    model = tiny()
    x2d, _ = windows(model, batch=3)
    gains = model.frame_gains(x2d)
    assert gains.shape == (3, 9) and ((gains > 0) & (gains < 1)).all()
    with torch.no_grad():
        assert torch.equal(gains, model.denoiser.encode_condition(x2d)["sampler_gain"])
    assert tiny(energy_regulator=False).frame_gains(x2d) is None
    with pytest.raises(ValueError, match="windows"):
        model.frame_gains(torch.zeros(1, 10, J, 2))


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, 1.0),  # the default strength (with energy_uses="smoothing")
    ({"smoothing": 0.5}, 0.5),  # the paper's design
    ({"energy_regulator": False, "smoothing": 0.5}, 0.5),  # decoupled: "regulator off, same smoothing"
    ({"smoothing": 0.0}, 0.0),  # "regulator on without smoothing"
    ({"energy_regulator": False, "smoothing_mode": "with_regulator"}, 0.0),  # old checkpoints
    ({"smoothing_mode": "with_regulator", "smoothing": 0.5}, 0.5),
])
def test_sampler_smoothing_is_its_own_setting(monkeypatch, overrides, expected):
    seen = []
    real = diffusion.ddim_sample

    def spy(*args, **kwargs):
        seen.append(kwargs["smoothing"])
        return real(*args, **kwargs)

    monkeypatch.setattr(diffusion, "ddim_sample", spy)
    model = tiny(**overrides)
    assert model.smoothing() == expected
    model.sample(windows(model)[0], steps=1)
    assert seen == [expected]


def test_smoothing_in_the_loss_trains_the_gain_map(monkeypatch):
    """The sampler's per-frame smoothing is applied to x0 in the loss too, with the gain's gradient."""
    seen = []
    real = diffusion.training_loss

    def spy(*args, **kwargs):
        seen.append((kwargs["smoothing"], kwargs["frame_gain"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(diffusion, "training_loss", spy)
    x2d, x3d = windows(tiny(), batch=4)
    grads = {}
    for uses in ("smoothing", "all"):
        for in_loss in (True, False):
            model = tiny(smoothing_in_loss=in_loss, energy_uses=uses)
            model.training_loss(x2d, x3d, generator=torch.Generator().manual_seed(0)).backward()
            grads[uses, in_loss] = model.denoiser.energy.offset.grad
    assert seen[0][0] == 1.0 and seen[0][1].requires_grad  # the gain, not detached
    assert seen[1] == (0.0, None)
    # by default (energy_uses="smoothing") the loss's smoothing is the map's only training signal
    assert grads["smoothing", True].abs() > 0 and grads["smoothing", False] is None
    assert grads["all", True].abs() > 0 and grads["all", False].abs() > 0
    assert not torch.equal(grads["all", True], grads["all", False])


@pytest.mark.parametrize("conditioning", ["adaln_single", "additive"])
def test_energy_uses_smoothing_keeps_the_gain_out_of_the_network(monkeypatch, conditioning):
    """energy_uses="smoothing": the gain reaches neither the network nor eta, only the smoothing weight
    (in the sampler and the loss); "all": moving the gain map changes the network's output."""
    x2d, x3d = windows(tiny())
    t = torch.tensor([500, 500])
    outputs = {}
    for uses in ("all", "smoothing"):
        model = tiny(energy_uses=uses, conditioning=conditioning).eval()
        x_t = torch.randn(2, 9, J, 3, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            before = model.denoiser(x_t, t, model.denoiser.encode_condition(x2d))
            model.denoiser.energy.offset.fill_(3.0)  # every gain near 1
            after = model.denoiser(x_t, t, model.denoiser.encode_condition(x2d))
        outputs[uses] = torch.equal(before, after)
    assert outputs == {"all": False, "smoothing": True}
    smoothing_only = tiny(energy_uses="smoothing", conditioning=conditioning)
    assert smoothing_only.denoiser.gain_embedding is None
    seen = []
    real = diffusion.ddim_sample

    def spy(*args, **kwargs):
        seen.append((kwargs["gain_in_eta"], kwargs["frame_gain"] is not None))
        return real(*args, **kwargs)

    monkeypatch.setattr(diffusion, "ddim_sample", spy)
    smoothing_only.sample(x2d, steps=2)
    tiny(conditioning=conditioning, energy_uses="all").sample(x2d, steps=2)
    assert seen == [(False, True), (True, True)]
    smoothing_only.training_loss(x2d, x3d, generator=torch.Generator().manual_seed(0)).backward()
    assert smoothing_only.denoiser.energy.offset.grad.abs() > 0  # trained through the loss's smoothing
    with pytest.raises(ValueError, match="energy_uses"):
        tiny(energy_uses="blocks")


def test_no_weight_decay_names_the_regulator_map():
    model = tiny()
    names = dict(model.named_parameters())
    assert model.no_weight_decay() == {"denoiser.energy.slope_raw", "denoiser.energy.offset"}
    assert model.no_weight_decay() <= set(names)
    assert tiny(energy_regulator=False).no_weight_decay() == set()


@pytest.mark.parametrize("conditioning", CONDITIONING_KINDS)
def test_every_parameter_gets_gradient(conditioning):
    model = tiny(conditioning=conditioning)
    x2d, x3d = windows(model, batch=4)
    model.training_loss(x2d, x3d, generator=torch.Generator().manual_seed(0)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_counts():
    model = tiny()
    assert model.count_parameters() == sum(p.numel() for p in model.denoiser.parameters())
    assert model.flops_per_frame() == model.denoiser.flops_per_frame() > 0
    per_frame_tokens = {"temporal_patch": 1}  # the width/depth/window sizes alone
    small, tiny_p1 = (PoseDiffusion.from_preset(name, **per_frame_tokens) for name in ("small", "tiny"))
    assert small.flops_per_frame() > 4 * tiny_p1.flops_per_frame()


def test_float64_follows_input():
    model = tiny().double()
    x2d, x3d = windows(model)
    assert model.sample(x2d.double(), num_hypotheses=2).dtype == torch.float64
    assert model.training_loss(x2d.double(), x3d.double()).dtype == torch.float64


@pytest.mark.slow
def test_tiny_overfits_one_batch():
    model = tiny(dropout=0.0)
    x2d, x3d = windows(model, batch=2)  # 2 windows x 150 steps: ratio ~0.08 (8 x 200: ~0.10, 3x slower)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        optimizer.zero_grad()
        loss = model.training_loss(x2d, x3d, generator=generator)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.2 * first, (first, last)
