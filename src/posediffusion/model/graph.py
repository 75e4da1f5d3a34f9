"""Anatomical graph diffuser (AGD): a learnable skeletal graph convolution over the joints of each skeleton.

    A       = clamp_min(A_skel + (R + R^T) / 2, 0)         A_skel: 0/1 skeleton graph with self-loops
    A_hat   = D^-1/2 A D^-1/2,   D = diag(sum_j A_ij)        R: learnable residual, initialised at 0
    y_n     = A_hat (x_n W) + b                              for EVERY skeleton n of the batch

``clamp_min`` passes gradient at exactly 0, so zero entries of the skeleton graph can grow into learned
non-anatomical couplings (e.g. wrist <-> wrist); an entry pushed below 0 is cut off.

The alternative form (``graph_mode="attention_bias"``, :class:`SkeletalAttentionBias`) puts the graph into
the spatial attention itself, as Graphormer's spatial encoding: per head h,

    B_h(i, j) = -slope_h * hops(i, j) + R_h(i, j)          R learnable, initialised at 0

is added to the attention logits, with slopes 2^(-8k/H) (k = 0..H-1; ALiBi's geometric series, from 1) so
that some heads start local along the skeleton and others nearly global.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from posediffusion.skeleton import Skeleton


def skeleton_adjacency(skeleton: Skeleton, hops: int = 1) -> np.ndarray:
    """(J, J) float32 0/1 adjacency: 1 where joints are at most ``hops`` bones apart (self-loops included)."""
    if hops < 1:
        raise ValueError(f"hops must be >= 1, got {hops}")
    return (skeleton.hop_distances() <= hops).astype(np.float32)


def normalize_adjacency(adjacency: Tensor) -> Tensor:
    """Symmetric normalisation D^-1/2 A D^-1/2 of a non-negative (J, J) adjacency with self-loops."""
    degree = adjacency.sum(dim=-1).clamp_min(1e-6)  # (J,)
    inv_sqrt = degree.rsqrt()
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


class AnatomicalGraph(nn.Module):
    """Graph convolution with a learnable skeletal adjacency, applied to every skeleton independently.

    Args:
        skeleton: the joint graph that initialises the adjacency.
        width: D, feature width in and out.
        hops: skeleton edges connect joints up to ``hops`` bones apart.
        bias: add a learnable bias after aggregation.

    Shapes:
        input (N, J, D) with N any number of skeletons (e.g. B*T) -> output (N, J, D).
    """

    def __init__(self, skeleton: Skeleton, width: int, hops: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.register_buffer("skeleton_adjacency", torch.from_numpy(skeleton_adjacency(skeleton, hops)))
        num_joints = skeleton.num_joints
        self.residual = nn.Parameter(torch.zeros(num_joints, num_joints))
        self.linear = nn.Linear(width, width, bias=False)
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None

    def learned_adjacency(self) -> Tensor:
        """(J, J) current normalised graph A_hat (symmetric, non-negative)."""
        residual = 0.5 * (self.residual + self.residual.T)
        return normalize_adjacency((self.skeleton_adjacency + residual).clamp_min(0.0))

    def forward(self, x: Tensor) -> Tensor:
        """Aggregate neighbour features: (N, J, D) -> (N, J, D)."""
        a_hat = self.learned_adjacency().to(x.dtype)  # (J, J)
        out = torch.einsum("ij,njd->nid", a_hat, self.linear(x))  # (N, J, D)
        return out if self.bias is None else out + self.bias


def head_slopes(heads: int) -> Tensor:
    """(H,) geometric slopes 2^(-8k/H), k = 0..H-1: 1 for the first head, 2^(-8(H-1)/H) for the last
    (ALiBi's series shifted to start at 1; H=8: 1, 1/2, ..., 1/128)."""
    return torch.pow(2.0, -8.0 * torch.arange(heads, dtype=torch.float32) / heads)


class SkeletalAttentionBias(nn.Module):
    """The learnable skeletal graph as an additive bias on spatial attention logits (one table per head).

    Args:
        skeleton: the joint graph whose bone distances initialise the bias.
        heads: H, attention heads of the spatial attention.

    Shapes: ``forward()`` -> (H, J, J), added to the (n, H, J, J) logits by broadcasting.
    Weight decay pulls the residual R towards 0, i.e. the bias towards the anatomical prior.
    """

    def __init__(self, skeleton: Skeleton, heads: int) -> None:
        super().__init__()
        hops = torch.from_numpy(skeleton.hop_distances().astype(np.float32))  # (J, J)
        self.register_buffer("prior", -head_slopes(heads)[:, None, None] * hops)  # (H, J, J)
        self.residual = nn.Parameter(torch.zeros(heads, skeleton.num_joints, skeleton.num_joints))

    def forward(self) -> Tensor:
        """(H, J, J) bias B = prior + R."""
        return self.prior + self.residual

    def learned_adjacency(self) -> Tensor:
        """(J, J) the graph the bias imposes: row-softmax of the head-averaged bias (the attention weights of
        a query whose logits are otherwise uniform; rows sum to 1, not symmetric)."""
        return torch.softmax(self.forward().mean(dim=0), dim=-1)
