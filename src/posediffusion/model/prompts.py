"""Contextual motion prompts (CMP): a semantic layout branch and a motion state branch.

* :class:`SemanticPrompts` - 7 trainable prompt tokens (``skeleton.BODY_PARTS`` + "body"). Each joint's
  input token receives its part's prompt; spatial blocks cross-attend from joints to all 7 prompts.
  Tokens start from stored sentence embeddings of part descriptions (``assets/part_prompts.npy``, made
  offline by ``tools/make_part_prompts.py``) or from a seeded random draw; they are parameters and learn.
* :class:`MotionPrompts` - per-frame features of the 2D input's dynamics (velocity, acceleration, per-part
  speed) -> MLP -> a (B, T, D) prompt added to the timestep embedding that conditions the blocks.
  "bounded" features (default) are temporally smoothed, in body sizes and tanh-compressed, so no input can
  push them outside [-1, 1]; "raw_2d" (old checkpoints) are 20 x the raw finite differences.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from posediffusion.model.motion import (
    body_velocity,
    local_velocity,
    masked_body_velocity,
    masked_local_velocity,
    temporal_difference,
)
from posediffusion.skeleton import BODY_PARTS, Skeleton

logger = logging.getLogger(__name__)

PROMPT_NAMES = (*BODY_PARTS, "body")
PROMPT_ASSET = Path(__file__).resolve().parent / "assets" / "part_prompts.npy"
PROMPT_EMBED_DIM = 384
#: "raw_2d" features are multiplied by this before the MLP: normalised-screen velocities are ~0.001-0.05
#: per frame at 50 fps, so x20 brings them near unit scale (but nothing bounds them).
MOTION_FEATURE_SCALE = 20.0
#: "bounded" features: tanh(velocity / VELOCITY_SCALE), tanh(acceleration / ACCELERATION_SCALE), in body
#: sizes per frame (per frame^2). About the 90th percentiles of |component| on the CMU test split (0.045,
#: 0.0045), so ordinary motion stays in tanh's near-linear range and only extreme motion saturates.
VELOCITY_SCALE = 0.05
ACCELERATION_SCALE = 0.005


class SemanticPrompts(nn.Module):
    """Seven trainable body-part prompt tokens projected to width D.

    Args:
        skeleton: gives each joint's part (``Skeleton.part_of_joint``).
        width: D.
        init: "text" (stored sentence embeddings; falls back to "random" if the asset is missing) or
            "random" (seeded normal draw, std 1/sqrt(384)).
    """

    def __init__(self, skeleton: Skeleton, width: int, init: str = "text") -> None:
        super().__init__()
        self.tokens = nn.Parameter(_initial_tokens(init))  # (7, 384)
        self.project = nn.Linear(PROMPT_EMBED_DIM, width)
        self.register_buffer("part_index", torch.from_numpy(skeleton.part_of_joint()), persistent=False)

    def forward(self) -> Tensor:
        """(7, D) projected prompt tokens, rows in ``PROMPT_NAMES`` order."""
        return self.project(self.tokens)

    def joint_tokens(self, prompts: Tensor) -> Tensor:
        """(J, D) each joint's part prompt, taken from ``prompts`` (7, D)."""
        return prompts[self.part_index]


def _initial_tokens(init: str) -> Tensor:
    """(7, 384) float32 initial prompt tokens."""
    if init == "text" and PROMPT_ASSET.is_file():
        tokens = np.load(PROMPT_ASSET)
        if tokens.shape != (len(PROMPT_NAMES), PROMPT_EMBED_DIM):
            raise ValueError(f"{PROMPT_ASSET}: expected shape (7, 384), got {tokens.shape}")
        return torch.from_numpy(tokens.astype(np.float32))
    if init == "text":
        logger.warning("%s missing: semantic prompts start from a seeded random draw", PROMPT_ASSET)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(len(PROMPT_NAMES), PROMPT_EMBED_DIM, generator=generator) / PROMPT_EMBED_DIM**0.5


class MotionPrompts(nn.Module):
    """Motion-state prompt from the 2D input: per frame (``target="condition"``) or per joint token
    (``target="tokens"``).

    "bounded": with u = smoothed velocity in body sizes per frame and a = its smoothed rate of change
    (``energy.body_velocity`` / ``energy.local_velocity``, Gaussian window ``sigma`` frames)::

        features_t = concat(tanh(u_t / 0.05) (2J), tanh(a_t / 0.005) (2J), tanh(part speed_t / 0.05) (6))

    "raw_2d": ``20 * concat(v_t, a_t, part speed_t)`` with v, a edge-replicated raw finite differences.
    Part speed = mean |velocity| over the joints of each body part. prompt_t = MLP(features_t), added to
    the frame's conditioning c (the paper's design).

    ``target="tokens"`` ("bounded" only): each joint's own ``concat(tanh(u / 0.05), tanh(a / 0.005))`` (4
    values) goes through one ``Linear(4, D)`` and is added to that joint's token, so a joint's motion
    reaches its token directly instead of through one vector per frame.

    With a missing-joint mask (``visible``, "bounded" only) u and a are fitted through the seen frames of
    each joint (``motion.masked_body_velocity``); where they are unknown (fewer than two seen frames in the
    fit's window) they are 0, and part speeds average the joints whose velocity is known.

    Shapes:
        x2d (B, T, J, 2) [, visible (B, T, J) bool] -> (B, T, D) ("condition") or (B, T, J, D) ("tokens").
    """

    def __init__(self, skeleton: Skeleton, width: int, kind: str = "bounded", sigma: float = 3.0,
                 target: str = "condition") -> None:
        super().__init__()
        if kind not in ("bounded", "raw_2d"):
            raise ValueError(f"motion feature kind must be 'bounded' or 'raw_2d', got {kind!r}")
        if target not in ("condition", "tokens") or (target == "tokens" and kind != "bounded"):
            raise ValueError(f"motion prompt target must be 'condition', or 'tokens' with 'bounded' "
                             f"features, got {target!r} with {kind!r}")
        self.kind, self.sigma, self.target = kind, sigma, target
        num_features = 4 * skeleton.num_joints + len(BODY_PARTS)
        part_matrix = torch.zeros(skeleton.num_joints, len(BODY_PARTS))  # (J, 6) mean over each part
        for k, part in enumerate(BODY_PARTS):
            joints = list(skeleton.parts[part])
            part_matrix[joints, k] = 1.0 / len(joints)
        self.register_buffer("part_matrix", part_matrix, persistent=False)
        if target == "condition":
            self.mlp = nn.Sequential(nn.Linear(num_features, width), nn.GELU(), nn.Linear(width, width))
        else:
            self.token_projection = nn.Linear(4, width)

    def motion_state(self, x2d: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Velocity (B, T, J, 2), acceleration (B, T, J, 2) and part speed (B, T, 6) of the features' kind
        (body sizes per frame for "bounded", raw differences for "raw_2d"); with ``visible`` missing joints'
        coordinates are never read and unknown velocities are 0."""
        b, t, j, _ = x2d.shape
        if visible is not None:
            if self.kind == "raw_2d":
                raise ValueError("raw_2d motion features take no missing-joint mask (use 'bounded')")
            velocity, _, valid = masked_body_velocity(x2d.detach(), visible, self.sigma)  # (B,T,J,2), (B,T,J)
            known = valid[..., None].expand(b, t, j, 2).reshape(b, t, 2 * j)  # (B, T, 2J)
            acceleration = masked_local_velocity(velocity.reshape(b, t, 2 * j), known, self.sigma)[0]
            members = (self.part_matrix > 0).to(x2d.dtype)  # (J, 6) 1 where the joint is in the part
            weight = valid.to(x2d.dtype)  # (B, T, J)
            speed = velocity.norm(dim=-1) * weight  # (B, T, J), 0 where unknown
            part_speed = (speed @ members) / (weight @ members).clamp_min(1)  # (B, T, 6)
            return velocity, acceleration.view(b, t, j, 2), part_speed
        if self.kind == "raw_2d":
            velocity = temporal_difference(x2d)  # (B, T, J, 2)
            acceleration = temporal_difference(velocity)  # (B, T, J, 2)
        else:
            velocity, _ = body_velocity(x2d.detach(), self.sigma)  # (B, T, J, 2) body sizes per frame
            acceleration = local_velocity(velocity.reshape(b, t, 2 * j), self.sigma)[0].view(b, t, j, 2)
        return velocity, acceleration, velocity.norm(dim=-1) @ self.part_matrix.to(x2d.dtype)

    def features(self, x2d: Tensor, visible: Tensor | None = None) -> Tensor:
        """(B, T, J, 2) [, visible (B, T, J) bool] -> (B, T, 4J + 6) per-frame motion features (in [-1, 1]
        for "bounded"); with ``visible`` missing joints' coordinates are never read."""
        velocity, acceleration, part_speed = self.motion_state(x2d, visible)
        if self.kind == "raw_2d":
            flat = [velocity.flatten(2), acceleration.flatten(2), part_speed]  # (B,T,2J), (B,T,2J), (B,T,6)
            return MOTION_FEATURE_SCALE * torch.cat(flat, dim=-1)
        flat = [velocity.flatten(2) / VELOCITY_SCALE, acceleration.flatten(2) / ACCELERATION_SCALE,
                part_speed / VELOCITY_SCALE]
        return torch.tanh(torch.cat(flat, dim=-1))

    def joint_features(self, x2d: Tensor, visible: Tensor | None = None) -> Tensor:
        """(B, T, J, 2) [, visible] -> (B, T, J, 4) per-joint bounded features: tanh(u / 0.05) and
        tanh(a / 0.005)."""
        velocity, acceleration, _ = self.motion_state(x2d, visible)
        return torch.tanh(torch.cat([velocity / VELOCITY_SCALE, acceleration / ACCELERATION_SCALE], dim=-1))

    def forward(self, x2d: Tensor, visible: Tensor | None = None) -> Tensor:
        """(B, T, J, 2) [, visible (B, T, J) bool] -> (B, T, D) per-frame prompt, or (B, T, J, D) per-token
        prompts with ``target="tokens"``."""
        if self.target == "tokens":
            return self.token_projection(self.joint_features(x2d, visible))
        return self.mlp(self.features(x2d, visible))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, sigma={self.sigma}, target={self.target}"
