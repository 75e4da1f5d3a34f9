"""Tests for posediffusion.model.prompts: finite differences, semantic part prompts, motion prompts."""

from __future__ import annotations

import numpy as np
import torch

from posediffusion.model.motion import temporal_difference
from posediffusion.model.prompts import (
    MOTION_FEATURE_SCALE,
    PROMPT_ASSET,
    PROMPT_NAMES,
    MotionPrompts,
    SemanticPrompts,
)
from posediffusion.skeleton import H36M_17

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


def test_motion_features_by_hand():
    # every joint moves with constant velocity (0.01, -0.02) per frame: acceleration 0
    t = torch.arange(5.0)[:, None, None]
    x2d = torch.randn(1, 1, J, 2) + t * torch.tensor([0.01, -0.02])  # (1, 5, J, 2)
    feats = MotionPrompts(H36M_17, 8).features(x2d)  # (1, 5, 4J + 6)
    assert feats.shape == (1, 5, 4 * J + 6)
    velocity = feats[..., : 2 * J].reshape(1, 5, J, 2) / MOTION_FEATURE_SCALE
    assert torch.allclose(velocity, torch.tensor([0.01, -0.02]).expand(1, 5, J, 2), atol=1e-6)
    assert torch.allclose(feats[..., 2 * J : 4 * J], torch.zeros(1, 5, 2 * J), atol=1e-5)
    speed = np.hypot(0.01, 0.02) * MOTION_FEATURE_SCALE
    assert torch.allclose(feats[..., 4 * J :], torch.full((1, 5, 6), speed), atol=1e-5)


def test_part_speed_only_moves_with_its_part():
    x2d = torch.zeros(1, 3, J, 2)
    x2d[:, :, 13, 0] = torch.tensor([0.0, 0.03, 0.06])  # only the left wrist moves, 0.03 per frame
    part_speed = MotionPrompts(H36M_17, 8).features(x2d)[0, :, 4 * J :] / MOTION_FEATURE_SCALE  # (3, 6)
    expected = torch.zeros(3, 6)
    expected[:, 2] = 0.03 / 3  # mean over the 3 left-arm joints
    assert torch.allclose(part_speed, expected, atol=1e-6)


def test_motion_prompt_shape_and_still_input():
    module = MotionPrompts(H36M_17, 12)
    still = torch.randn(1, 1, J, 2).expand(2, 6, J, 2)
    out = module(still)
    assert out.shape == (2, 6, 12)
    assert torch.allclose(out, out[:, :1].expand_as(out))  # no motion: same prompt every frame
    moving = still + torch.linspace(0, 0.5, 6)[None, :, None, None]
    assert not torch.allclose(module(moving), out)
