"""Motion of a 2D keypoint window: the finite differences shared by the motion prompts and the energy
regulator (``prompts.MotionPrompts``, ``energy.motion_energy``), so both see the same velocities."""

from __future__ import annotations

import torch
from torch import Tensor


def temporal_difference(x: Tensor) -> Tensor:
    """Backward finite difference along dim 1, edge-replicated: (B, T, ...) -> (B, T, ...).

    ``d[:, t] = x[:, t] - x[:, t-1]`` for t >= 1 and ``d[:, 0] = d[:, 1]``; all zeros when T == 1.
    """
    if x.shape[1] < 2:
        return torch.zeros_like(x)
    d = x[:, 1:] - x[:, :-1]  # (B, T-1, ...)
    return torch.cat([d[:, :1], d], dim=1)  # (B, T, ...)
