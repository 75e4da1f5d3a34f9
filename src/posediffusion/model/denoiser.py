"""The PoseDiffusion+ denoiser: a MixSTE-style spatial-temporal transformer that predicts the clean pose x0.

Tokens are one joint in one frame: ``embed(2D) + embed(noisy 3D) + joint + frame (+ part prompt)``.
L pairs of blocks alternate spatial attention (over the J joints of a frame, with the anatomical graph
branch and cross-attention to the body-part prompts) and temporal attention (over the T frames of a
joint). Every block is pre-norm with adaLN modulation from ``c = timestep embedding + motion prompt``
(per frame); in temporal blocks the per-frame FiLM shift/scale is multiplied by the energy gain.

Shape glossary: N batch (B, or B*H with hypotheses folded in), T frames, J joints, D width, P = 7 prompts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posediffusion.config import ModelConfig
from posediffusion.model.energy import TemporalEnergyRegulator
from posediffusion.model.graph import AnatomicalGraph
from posediffusion.model.prompts import PROMPT_EMBED_DIM, PROMPT_NAMES, MotionPrompts, SemanticPrompts
from posediffusion.skeleton import H36M_17, Skeleton, zero_root

MODULATION_INIT_STD = 0.02
HEAD_INIT_STD = 1e-3
#: Condition key of the energy regulator's per-frame gain (B, T): read by the temporal blocks, and handed
#: to the sampler explicitly by :meth:`Denoiser.sampler_gain` (the sampler knows no model keys).
GAIN_KEY = "sampler_gain"


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of integer timesteps: (N,) -> (N, dim) float32 ``[cos | sin]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (N, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, 2 * half)
    return F.pad(emb, (0, dim - 2 * half))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """FiLM / adaLN: ``x * (1 + scale) + shift`` (broadcasting)."""
    return x * (1 + scale) + shift


def _modulation(width: int, chunks: int) -> nn.Linear:
    """Linear c (D) -> ``chunks`` x D modulation vectors, initialised small so blocks start near identity."""
    layer = nn.Linear(width, chunks * width)
    nn.init.normal_(layer.weight, std=MODULATION_INIT_STD)
    nn.init.zeros_(layer.bias)
    return layer


class Attention(nn.Module):
    """Multi-head attention; keys/values from ``context`` (self-attention when it is ``None``).

    Shapes: x (n, Lq, D), context (n, Lk, D) -> (n, Lq, D).
    ``kind`` "sdpa" uses torch's fused kernel, "math" plain matmul-softmax-matmul (faster for small heads
    on CPU, see docs/model.md).
    """

    def __init__(self, width: int, heads: int, kind: str = "sdpa", dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.kind, self.dropout = heads, kind, dropout
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        n, lq, d = x.shape
        hd = d // self.heads
        q = self.query(x).view(n, lq, self.heads, hd).transpose(1, 2)  # (n, h, Lq, hd)
        kv = self.key_value(context).view(n, context.shape[1], 2, self.heads, hd)  # (n, Lk, 2, h, hd)
        k, v = kv.permute(2, 0, 3, 1, 4)  # each (n, h, Lk, hd)
        p = self.dropout if self.training else 0.0
        if self.kind == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (n, h, Lq, hd)
        else:
            weights = torch.softmax((q @ k.transpose(-2, -1)) * hd**-0.5, dim=-1)  # (n, h, Lq, Lk)
            y = F.dropout(weights, p) @ v  # (n, h, Lq, hd)
        return self.out(y.transpose(1, 2).reshape(n, lq, d))  # (n, Lq, D)


class Mlp(nn.Sequential):
    """Linear(D, rD) -> GELU -> Linear(rD, D) -> dropout."""

    def __init__(self, width: int, ratio: float, dropout: float) -> None:
        hidden = int(round(width * ratio))
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width), nn.Dropout(dropout))


def modulation_terms(modulation: nn.Module, c: Tensor) -> tuple[Tensor, ...]:
    """adaLN terms of a block: c (N, T or 1, D) -> shift, scale, gate (attention), shift, scale, gate (MLP),
    each (N, T or 1, 1, D)."""
    return modulation(c)[:, :, None].chunk(6, dim=-1)


class SpatialBlock(nn.Module):
    """Attention over the J joints of each frame (+ graph branch, + prompt cross-attention).

    Shapes: x (N, T, J, D), c (N, T or 1, D), prompts (N, P, D) or None -> (N, T, J, D).
    """

    def __init__(self, cfg: ModelConfig, skeleton: Skeleton) -> None:
        super().__init__()
        d = cfg.width
        self.norm_attn = nn.LayerNorm(d, elementwise_affine=False)
        self.attn = Attention(d, cfg.heads, cfg.attention, cfg.dropout)
        self.graph = AnatomicalGraph(skeleton, d, cfg.graph_hops) if cfg.graph else None
        self.norm_prompt = nn.LayerNorm(d) if cfg.semantic_prompts else None
        self.prompt_attn = Attention(d, cfg.heads, "math", cfg.dropout) if cfg.semantic_prompts else None
        self.norm_mlp = nn.LayerNorm(d, elementwise_affine=False)
        self.mlp = Mlp(d, cfg.mlp_ratio, cfg.dropout)
        self.modulation = _modulation(d, 6)

    def forward(self, x: Tensor, c: Tensor, prompts: Tensor | None) -> Tensor:
        n, t, j, d = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation_terms(self.modulation, c)
        h = modulate(self.norm_attn(x), shift_a, scale_a).reshape(n * t, j, d)  # (N*T, J, D)
        branch = self.attn(h)  # (N*T, J, D)
        if self.graph is not None:
            branch = branch + self.graph(h)  # (N*T, J, D)
        x = x + (1 + gate_a) * branch.view(n, t, j, d)
        if self.prompt_attn is not None:
            q = self.norm_prompt(x).reshape(n, t * j, d)  # (N, T*J, D)
            x = x + self.prompt_attn(q, prompts).view(n, t, j, d)
        return x + (1 + gate_m) * self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))


class TemporalBlock(nn.Module):
    """Attention over the T frames of each joint; per-frame FiLM shift/scale multiplied by the energy gain.

    Shapes: x (N, T, J, D), c (N, T or 1, D), gain (N, T) or None -> (N, T, J, D).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm_attn = nn.LayerNorm(d, elementwise_affine=False)
        self.attn = Attention(d, cfg.heads, cfg.attention, cfg.dropout)
        self.norm_mlp = nn.LayerNorm(d, elementwise_affine=False)
        self.mlp = Mlp(d, cfg.mlp_ratio, cfg.dropout)
        self.modulation = _modulation(d, 6)

    def forward(self, x: Tensor, c: Tensor, gain: Tensor | None) -> Tensor:
        n, t, j, d = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation_terms(self.modulation, c)
        if gain is not None:
            g = gain[:, :, None, None].to(x.dtype)  # (N, T, 1, 1)
            shift_a, scale_a, shift_m, scale_m = (g * m for m in (shift_a, scale_a, shift_m, scale_m))
        h = modulate(self.norm_attn(x), shift_a, scale_a)  # (N, T, J, D)
        h = h.transpose(1, 2).reshape(n * j, t, d)  # (N*J, T, D)
        h = self.attn(h).view(n, j, t, d).transpose(1, 2)  # (N, T, J, D)
        x = x + (1 + gate_a) * h
        return x + (1 + gate_m) * self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))


class Denoiser(nn.Module):
    """x0-predicting denoiser: ``forward(x_t, t, encode_condition(x2d)) -> x0``.

    Args:
        cfg: the model configuration (width, depth, switches...).
        skeleton: joint graph, body parts and root (Human3.6M-17 by default).
    """

    def __init__(self, cfg: ModelConfig, skeleton: Skeleton = H36M_17) -> None:
        super().__init__()
        if cfg.num_joints != skeleton.num_joints:
            raise ValueError(
                f"config has {cfg.num_joints} joints, skeleton {skeleton.name} has {skeleton.num_joints}"
            )
        self.cfg, d = cfg, cfg.width
        self.embed_2d = nn.Linear(2, d)
        self.embed_3d = nn.Linear(3, d, bias=False)
        self.joint_embedding = nn.Parameter(0.02 * torch.randn(cfg.num_joints, d))  # (J, D)
        self.frame_embedding = nn.Parameter(0.02 * torch.randn(cfg.frames, 1, d))  # (T, 1, D)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.semantic = SemanticPrompts(skeleton, d, cfg.prompt_init) if cfg.semantic_prompts else None
        self.motion = MotionPrompts(skeleton, d) if cfg.motion_prompts else None
        self.energy = TemporalEnergyRegulator(cfg.energy_sigma) if cfg.energy_regulator else None
        self.spatial_blocks = nn.ModuleList(SpatialBlock(cfg, skeleton) for _ in range(cfg.depth))
        self.temporal_blocks = nn.ModuleList(TemporalBlock(cfg) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_modulation = _modulation(d, 2)
        self.head = nn.Linear(d, 3)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.head.bias)
        self.root = skeleton.root

    def encode_condition(self, x2d: Tensor) -> dict[str, Tensor]:
        """Everything independent of the noisy pose, computed once per window.

        Args:
            x2d: (B, T, J, 2) normalised screen coordinates, T == cfg.frames.

        Returns:
            ``tokens`` (B, T, J, D) 2D + joint + frame (+ part prompt) embedding; with semantic prompts
            ``prompts`` (B, P, D); with motion prompts ``frame_prompt`` (B, T, D); with the energy
            regulator ``energy`` (B, T) and the gain ``GAIN_KEY`` (B, T) in (0, 1).
        """
        b, t, j, _ = x2d.shape
        if t != self.cfg.frames or j != self.cfg.num_joints:
            expected = f"(B, {self.cfg.frames}, {self.cfg.num_joints}, 2)"
            raise ValueError(f"x2d must be {expected}, got {tuple(x2d.shape)}")
        tokens = self.embed_2d(x2d) + self.joint_embedding + self.frame_embedding  # (B, T, J, D)
        cond: dict[str, Tensor] = {}
        if self.semantic is not None:
            prompts = self.semantic()  # (P, D)
            tokens = tokens + self.semantic.joint_tokens(prompts)  # (B, T, J, D)
            cond["prompts"] = prompts.expand(b, -1, -1)  # (B, P, D)
        cond["tokens"] = tokens
        if self.motion is not None:
            cond["frame_prompt"] = self.motion(x2d)  # (B, T, D)
        if self.energy is not None:
            cond["energy"], cond[GAIN_KEY] = self.energy(x2d)  # (B, T), (B, T)
        return cond

    def sampler_gain(self, cond: dict[str, Tensor]) -> Tensor | None:
        """The per-frame gain (B, T) in (0, 1) for the sampler's energy regulation, ``None`` without it."""
        return cond[GAIN_KEY] if self.energy is not None else None

    def forward(self, x_t: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """Predict the clean pose.

        Args:
            x_t: (N, T, J, 3) noisy pose.
            t: (N,) long diffusion timesteps.
            cond: :meth:`encode_condition` output, every value with leading dim N.

        Returns:
            (N, T, J, 3) predicted x0; the root joint is exactly 0.
        """
        x = cond["tokens"] + self.embed_3d(x_t)  # (N, T, J, D)
        c = self.time_mlp(timestep_embedding(t, self.cfg.width).to(x.dtype))[:, None]  # (N, 1, D)
        if self.motion is not None:
            c = c + cond["frame_prompt"]  # (N, T, D)
        prompts = cond["prompts"] if self.semantic is not None else None
        gain = self.sampler_gain(cond)
        for spatial, temporal in zip(self.spatial_blocks, self.temporal_blocks, strict=True):
            x = temporal(spatial(x, c, prompts), c, gain)
        shift, scale = self.final_modulation(c)[:, :, None].chunk(2, dim=-1)  # each (N, T|1, 1, D)
        out = self.head(modulate(self.final_norm(x), shift, scale))  # (N, T, J, 3)
        return zero_root(out, self.root)

    def learned_adjacency(self) -> Tensor | None:
        """(L, J, J) normalised learned graph of every spatial block, or ``None`` without the graph."""
        if not self.cfg.graph:
            return None
        return torch.stack([block.graph.learned_adjacency() for block in self.spatial_blocks])

    def flops_per_frame(self) -> float:
        """Analytic matmul FLOPs (2 x multiply-adds) of one network evaluation, per frame of a window.

        Counts every linear layer and attention matmul (not norms/activations); work done once per window
        (encode_condition, the timestep MLP, prompt keys/values) is divided by T.
        """
        cfg, d, j, t = self.cfg, self.cfg.width, self.cfg.num_joints, self.cfg.frames
        hidden, prompts = int(round(d * cfg.mlp_ratio)), len(PROMPT_NAMES)
        cond_rows = 1.0 if cfg.motion_prompts else 1.0 / t  # c is per frame with motion prompts
        block = j * (4 * d * d + 2 * d * hidden) + cond_rows * 6 * d * d  # q, kv, out, MLP; modulation
        spatial = block + 2 * j * j * d  # + scores and weighted sum over J keys
        temporal = block + 2 * j * t * d  # + scores and weighted sum over T keys
        if cfg.graph:
            spatial += j * d * d + j * j * d
        if cfg.semantic_prompts:  # q + out per joint, scores + sum over P keys, k/v of P prompts per window
            spatial += 2 * j * d * d + 2 * j * prompts * d + 2 * prompts * d * d / t
        macs = cfg.depth * (spatial + temporal)
        macs += j * 5 * d + j * d * 3  # 2D + 3D embeddings, head
        macs += 2 * d * d / t + cond_rows * 2 * d * d  # timestep MLP, final modulation
        if cfg.motion_prompts:
            macs += (4 * j + 6) * d + d * d
        if cfg.semantic_prompts:
            macs += prompts * PROMPT_EMBED_DIM * d / t
        return float(2 * macs)
