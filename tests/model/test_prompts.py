"""Tests for posediffusion.model.prompts: finite differences, semantic part prompts, motion prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posediffusion.config import preset
from posediffusion.model.denoiser import Denoiser
from posediffusion.model.motion import body_size, temporal_difference
from posediffusion.model.prompts import (
    MOTION_FEATURE_SCALE,
    PROMPT_ASSET,
    PROMPT_NAMES,
    VELOCITY_SCALE,
    MotionPrompts,
    SemanticPrompts,
)
from posediffusion.skeleton import H36M_17
from tests.helpers import synthetic_motion

J = 17


def test_temporal_difference_by_hand():
    x = torch.tensor([[0.0, 1.0, 3.0, 6.0]])  # (B=1, T=4)
    assert torch.equal(temporal_difference(x), torch.tensor([[1.0, 1.0, 2.0, 3.0]]))
    assert torch.equal(temporal_difference(torch.ones(2, 1, 3)), torch.zeros(2, 1, 3))


def test_prompt_names_and_asset():
    assert PROMPT_NAMES == ("head", "torso", "left_arm", "right_arm", "left_leg", "right_leg", "body")
    tokens = np.load(PROMPT_ASSET)
    assert tokens.shape == (7, 384) and np.isfinite(tokens).all()
    prompts = SemanticPrompts(H36M_17, width=16, init="text")
    np.testing.assert_array_equal(prompts.tokens.detach().numpy(), tokens)


def test_random_init_is_seeded_and_prompts_are_trainable():
    a, b = SemanticPrompts(H36M_17, 16, init="random"), SemanticPrompts(H36M_17, 16, init="random")
    assert torch.equal(a.tokens, b.tokens)
    a().sum().backward()
    assert a.tokens.grad is not None and a.tokens.grad.abs().sum() > 0


def test_joints_receive_their_part_prompt():
    prompts = SemanticPrompts(H36M_17, 8)
    table = torch.arange(7.0)[:, None].expand(7, 8)  # row k filled with k
    parts = prompts.joint_tokens(table)[:, 0]  # (J,)
    assert parts[10] == 0  # Head -> head
    assert parts[0] == 1 and parts[8] == 1  # Hip, Thorax -> torso
    assert parts[13] == 2 and parts[16] == 3  # LWrist -> left_arm, RWrist -> right_arm
    assert parts[6] == 4 and parts[3] == 5  # LAnkle -> left_leg, RAnkle -> right_leg


def test_raw_2d_motion_features_by_hand():
    # every joint moves with constant velocity (0.01, -0.02) per frame: acceleration 0
    t = torch.arange(5.0)[:, None, None]
    x2d = torch.randn(1, 1, J, 2) + t * torch.tensor([0.01, -0.02])  # (1, 5, J, 2)
    feats = MotionPrompts(H36M_17, 8, kind="raw_2d").features(x2d)  # (1, 5, 4J + 6)
    assert feats.shape == (1, 5, 4 * J + 6)
    velocity = feats[..., : 2 * J].reshape(1, 5, J, 2) / MOTION_FEATURE_SCALE
    assert torch.allclose(velocity, torch.tensor([0.01, -0.02]).expand(1, 5, J, 2), atol=1e-6)
    assert torch.allclose(feats[..., 2 * J : 4 * J], torch.zeros(1, 5, 2 * J), atol=1e-5)
    speed = np.hypot(0.01, 0.02) * MOTION_FEATURE_SCALE
    assert torch.allclose(feats[..., 4 * J :], torch.full((1, 5, 6), speed), atol=1e-5)


def test_bounded_motion_features_by_hand():
    # constant velocity of (0.01, -0.02) body sizes per frame: u exact at every frame, acceleration 0
    x2d = torch.randn(1, 1, J, 2)
    t = torch.arange(7.0)[:, None, None]
    x2d = x2d + t * torch.tensor([0.01, -0.02]) * body_size(x2d)  # (1, 7, J, 2)
    feats = MotionPrompts(H36M_17, 8).features(x2d)  # (1, 7, 4J + 6)
    u = torch.tensor([0.01, -0.02])
    expected_v = torch.tanh(u / VELOCITY_SCALE).expand(1, 7, J, 2)
    assert torch.allclose(feats[..., : 2 * J].reshape(1, 7, J, 2), expected_v, atol=1e-5)
    assert torch.allclose(feats[..., 2 * J : 4 * J], torch.zeros(1, 7, 2 * J), atol=1e-4)
    speed = torch.tanh(u.norm() / VELOCITY_SCALE)
    assert torch.allclose(feats[..., 4 * J :], speed.expand(1, 7, 6), atol=1e-5)


@pytest.mark.parametrize("kind", ["bounded", "raw_2d"])
def test_part_speed_only_moves_with_its_part(kind):
    x2d = 0.1 * torch.randn(1, 1, J, 2, generator=torch.Generator().manual_seed(0)).expand(1, 9, J, 2).clone()
    x2d[:, :, 13, 0] += torch.arange(9.0) * 0.03  # only the left wrist moves
    part_speed = MotionPrompts(H36M_17, 8, kind=kind).features(x2d)[0, :, 4 * J :]  # (9, 6)
    assert (part_speed[:, 2] > 0).all()
    assert torch.equal(part_speed[:, [0, 1, 3, 4, 5]], torch.zeros(9, 5))


@pytest.mark.parametrize("kind", ["bounded", "raw_2d"])
def test_motion_prompt_shape_and_still_input(kind):
    module = MotionPrompts(H36M_17, 12, kind=kind)
    still = torch.randn(1, 1, J, 2).expand(2, 6, J, 2)
    out = module(still)
    assert out.shape == (2, 6, 12)
    assert torch.allclose(out, out[:, :1].expand_as(out))  # no motion: same prompt every frame
    moving = still + torch.linspace(0, 0.5, 6)[None, :, None, None]
    assert not torch.allclose(module(moving), out)


def test_bounded_features_stay_in_unit_range_for_any_input():
    generator = torch.Generator().manual_seed(0)
    wild = 50.0 * torch.randn(3, 27, J, 2, generator=generator)  # jumps of tens of units every frame
    feats = MotionPrompts(H36M_17, 8).features(wild)
    assert torch.isfinite(feats).all() and feats.abs().max() <= 1.0


def test_a_jump_keeps_the_conditioning_within_10x_of_an_ordinary_window():
    """Issue 10: raw x20 features reached a conditioning norm of 130 for a jump (vs ~2 for the timestep)."""
    walk = torch.from_numpy(synthetic_motion(27, 1000.0, 1.0, 200.0)[:, :, [0, 2]] / 1600.0 * 0.66)
    ordinary = walk.float()[None] * torch.tensor([1.0, -1.0])  # (1, 27, J, 2) a walking person, y down
    jump = ordinary.clone()
    jump[:, 13:, :, 0] += 5.0  # the whole body jumps 5 normalised units (2.5 image widths) at frame 13
    t = torch.full((1,), 500)
    for kind, bounded in (("bounded", True), ("raw_2d", False)):
        torch.manual_seed(0)
        net = Denoiser(preset("small", motion_features=kind).model)
        with torch.no_grad():
            norms = [net.condition_vector(t, net.encode_condition(x), torch.float32).norm(dim=-1).max()
                     for x in (ordinary, jump)]
        assert (norms[1] <= 10 * norms[0]) == bounded, (kind, norms)


def test_token_motion_prompts_give_each_joint_its_own_motion_by_hand():
    # only the left wrist (13) moves, at (0.02, 0) body sizes per frame (the body size barely changes:
    # the median over frames of the RMS radius is taken from the still-dominated frames' own values)
    g = torch.Generator().manual_seed(0)
    x2d = 0.1 * torch.randn(1, 1, J, 2, generator=g).expand(1, 9, J, 2).clone()
    size = body_size(x2d)
    x2d[:, :, 13, 0] += torch.arange(9.0) * 0.02 * size
    module = MotionPrompts(H36M_17, 8, target="tokens")
    feats = module.joint_features(x2d)  # (1, 9, J, 4)
    u = 0.02 * size / body_size(x2d)  # the wrist's velocity in the window's own body sizes
    assert torch.allclose(feats[0, :, 13, 0], torch.tanh(u / VELOCITY_SCALE).expand(9), atol=1e-5)
    assert torch.allclose(feats[0, :, 13, 1:], torch.zeros(9, 3), atol=1e-4)
    others = [k for k in range(J) if k != 13]
    assert torch.equal(feats[0][:, others], torch.zeros(9, J - 1, 4))
    out = module(x2d)  # (1, 9, J, 8)
    w, b = module.token_projection.weight, module.token_projection.bias
    assert out.shape == (1, 9, J, 8)
    assert torch.allclose(out[0, :, 13], feats[0, :, 13] @ w.T + b, atol=1e-6)
    assert torch.allclose(out[0, :, 0], b.expand(9, 8), atol=1e-6)  # a still joint: the bias only
    with pytest.raises(ValueError, match="tokens"):
        MotionPrompts(H36M_17, 8, kind="raw_2d", target="tokens")


def test_denoiser_with_token_motion_prompts_keeps_c_per_window():
    cfg = preset("tiny", motion_prompt_target="tokens").model
    net = Denoiser(cfg)
    x2d = 0.1 * torch.randn(2, cfg.frames, J, 2, generator=torch.Generator().manual_seed(1))
    cond = net.encode_condition(x2d)
    assert "frame_prompt" not in cond
    c = net.condition_vector(torch.tensor([3, 500]), cond, torch.float32)
    assert c.shape == (2, 1, cfg.width)  # only the timestep: the motion is in the tokens
    moving = x2d.clone()
    moving[:, :, 13] += torch.linspace(0, 0.3, cfg.frames)[None, :, None]
    assert not torch.allclose(net.encode_condition(moving)["tokens"], cond["tokens"])
    x_t = torch.randn(2, cfg.frames, J, 3)
    net(x_t, torch.tensor([3, 500]), net.encode_condition(moving)).square().sum().backward()
    assert net.motion.token_projection.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="motion_prompt_target"):
        preset("tiny", motion_prompt_target="frame")
    with pytest.raises(ValueError, match="needs motion_features 'bounded'"):
        preset("tiny", motion_prompt_target="tokens", motion_features="raw_2d")
