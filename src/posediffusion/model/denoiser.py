"""The PoseDiffusion+ denoiser: a MixSTE-style spatial-temporal transformer that predicts the clean pose x0.

Tokens are one joint in one frame: ``embed(2D) + embed(noisy 3D) + joint + frame (+ part prompt)``.
L pairs of blocks alternate spatial attention (over the J joints of a frame, with the anatomical graph
(a convolution branch, or a bias on the attention logits) and cross-attention to the body-part prompts)
and temporal attention (over the T frames of a joint). The conditioning c = timestep embedding (+ motion
prompt, per frame) enters by ``ModelConfig.conditioning``:

* "adaln_single" (default): pre-norm blocks with adaLN; ONE shared ``SiLU -> Linear(D, 6D)`` makes the
  six shift/scale/gate terms from c, and each block adds its own learned offsets (PixArt-alpha).
* "adaln": each block has its own ``Linear(D, 6D)`` modulation (the original network; 6 D^2 per block).
* "additive": c is added to every token once before the first block (D3DP / MixSTE); plain pre-norm
  blocks with affine LayerNorms, the frame embedding added before the first temporal block.

With adaLN, the temporal blocks' per-frame FiLM shift/scale is multiplied by the energy gain; with
"additive" the gain enters as a per-frame additive term ``g_t * gain_embedding``. With
``ModelConfig.energy_uses == "smoothing"`` the gain does neither (it only sets the smoothing weight).

With ``ModelConfig.joint_mask`` the 2D embedding takes ``(x * v_tj, y * v_tj, v_tj)`` where v_tj is 1 for a
seen joint and 0 for a missing one (``encode_condition(x2d, visible)``): a missing joint's placeholder
coordinates are zeroed and the flag tells the network to infer it from the rest of the body and from
the frames where it is seen; the motion prompts and the energy ignore missing joints too. With
``joint_mask`` false the network is unchanged (a 2-channel embedding, as in old checkpoints).

Shape glossary: N batch (B, or B*H with hypotheses folded in), T frames, J joints, D width, P = 7 prompts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posediffusion.config import ModelConfig
from posediffusion.model.energy import TemporalEnergyRegulator
from posediffusion.model.graph import AnatomicalGraph, SkeletalAttentionBias
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


def modulate(x: Tensor, shift: Tensor | None, scale: Tensor | None) -> Tensor:
    """FiLM / adaLN: ``x * (1 + scale) + shift`` (broadcasting); ``x`` itself without modulation."""
    return x if shift is None else x * (1 + scale) + shift


def gated(branch: Tensor, gate: Tensor | None) -> Tensor:
    """adaLN-Zero-style residual gate ``(1 + gate) * branch``; the branch itself without modulation."""
    return branch if gate is None else (1 + gate) * branch


def _modulation(width: int, chunks: int) -> nn.Linear:
    """Linear c (D) -> ``chunks`` x D modulation vectors, initialised small so blocks start near identity."""
    layer = nn.Linear(width, chunks * width)
    nn.init.normal_(layer.weight, std=MODULATION_INIT_STD)
    nn.init.zeros_(layer.bias)
    return layer


def patch_frames(x: Tensor, p: int) -> Tensor:
    """(N, T, J, C) -> (N, T/p, J, p*C): token k of joint j holds frames kp..kp+p-1 of j, frame-major."""
    n, t, j, c = x.shape
    return x.view(n, t // p, p, j, c).transpose(2, 3).reshape(n, t // p, j, p * c)


def unpatch_frames(x: Tensor, p: int) -> Tensor:
    """The inverse of :func:`patch_frames`: (N, T/p, J, p*C) -> (N, T, J, C)."""
    n, tp, j, pc = x.shape
    return x.view(n, tp, j, p, pc // p).transpose(2, 3).reshape(n, tp * p, j, pc // p)


def mean_over_patches(x: Tensor, p: int) -> Tensor:
    """(N, T, ...) -> (N, T/p, ...): the mean over each token's p frames; a size-1 frame axis passes."""
    if p == 1 or x.shape[1] == 1:
        return x
    return x.view(x.shape[0], x.shape[1] // p, p, *x.shape[2:]).mean(2)


class Attention(nn.Module):
    """Multi-head attention; keys/values from ``context`` (self-attention when it is ``None``), or given.

    Shapes: x (n, Lq, D), context (n, Lk, D) or key_value (n, Lk, 2D), bias (h, Lq, Lk) (added to the
    logits) -> (n, Lq, D).
    ``kind`` "sdpa" uses torch's fused kernel, "math" plain matmul-softmax-matmul (faster for small heads
    on CPU, see docs/model.md). ``project_context=False``: no key/value layer; the caller passes
    ``key_value`` already projected (the shared prompt keys/values, computed once per window).
    """

    def __init__(self, width: int, heads: int, kind: str = "sdpa", dropout: float = 0.0,
                 project_context: bool = True) -> None:
        super().__init__()
        self.heads, self.kind, self.dropout = heads, kind, dropout
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width) if project_context else None
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor | None = None, key_value: Tensor | None = None,
                bias: Tensor | None = None) -> Tensor:
        if key_value is None:
            if self.key_value is None:
                raise ValueError("this attention has no key/value projection: pass key_value")
            key_value = self.key_value(x if context is None else context)  # (n, Lk, 2D)
        n, lq, d = x.shape
        hd = d // self.heads
        q = self.query(x).view(n, lq, self.heads, hd).transpose(1, 2)  # (n, h, Lq, hd)
        kv = key_value.view(n, key_value.shape[1], 2, self.heads, hd)  # (n, Lk, 2, h, hd)
        k, v = kv.permute(2, 0, 3, 1, 4)  # each (n, h, Lk, hd)
        p = self.dropout if self.training else 0.0
        if self.kind == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (n, h, Lq, hd)
        else:
            logits = (q @ k.transpose(-2, -1)) * hd**-0.5  # (n, h, Lq, Lk)
            weights = torch.softmax(logits if bias is None else logits + bias, dim=-1)
            y = F.dropout(weights, p) @ v  # (n, h, Lq, hd)
        return self.out(y.transpose(1, 2).reshape(n, lq, d))  # (n, Lq, D)


class Mlp(nn.Sequential):
    """Linear(D, rD) -> GELU -> Linear(rD, D) -> dropout."""

    def __init__(self, width: int, ratio: float, dropout: float) -> None:
        hidden = int(round(width * ratio))
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width), nn.Dropout(dropout))


class ModulationOffsets(nn.Module):
    """adaLN-single per-block terms: the shared modulation (N, T|1, chunks*D) plus this block's learned
    offsets (chunks*D,), initialised at 0 (PixArt-alpha's ``scale_shift_table``)."""

    def __init__(self, width: int, chunks: int) -> None:
        super().__init__()
        self.offsets = nn.Parameter(torch.zeros(chunks * width))

    def forward(self, shared: Tensor) -> Tensor:
        return shared[..., : self.offsets.numel()] + self.offsets


def block_modulation(cfg: ModelConfig, chunks: int = 6) -> nn.Module | None:
    """The modulation a block owns: a Linear of c ("adaln"), offsets to the shared terms ("adaln_single"),
    or none ("additive")."""
    if cfg.conditioning == "adaln":
        return _modulation(cfg.width, chunks)
    if cfg.conditioning == "adaln_single":
        return ModulationOffsets(cfg.width, chunks)
    return None


def modulation_terms(modulation: nn.Module | None, c: Tensor | None, chunks: int = 6) -> tuple[Tensor, ...]:
    """A block's adaLN terms from its conditioning input c (N, T or 1, D; the shared 6D terms for
    adaln_single): shift, scale, gate (attention), shift, scale, gate (MLP), each (N, T or 1, 1, D);
    all ``None`` without modulation."""
    if modulation is None:
        return (None,) * chunks
    return modulation(c)[:, :, None].chunk(chunks, dim=-1)


def _norm(cfg: ModelConfig) -> nn.LayerNorm:
    """Pre-norm LayerNorm: affine in plain (additive) blocks, without parameters under adaLN."""
    return nn.LayerNorm(cfg.width, elementwise_affine=cfg.conditioning == "additive")


class SpatialBlock(nn.Module):
    """Attention over the J joints of each frame (+ graph branch, or graph bias on the attention logits,
    + prompt cross-attention when ``prompt_attention``; the denoiser gives it to the first
    ``cfg.prompt_attention_blocks`` blocks).

    Shapes: x (N, T, J, D), c (N, T or 1, D | 6D) or None, prompts (N, P, D) (per-block keys/values) or
    prompt_kv (N, P, 2D) (shared keys/values) or None -> (N, T, J, D).
    """

    def __init__(self, cfg: ModelConfig, skeleton: Skeleton, prompt_attention: bool) -> None:
        super().__init__()
        d = cfg.width
        self.norm_attn = _norm(cfg)
        self.attn = Attention(d, cfg.heads, cfg.attention, cfg.dropout)
        convolution = cfg.graph and cfg.graph_mode == "convolution"
        self.graph = AnatomicalGraph(skeleton, d, cfg.graph_hops) if convolution else None
        self.graph_bias = (SkeletalAttentionBias(skeleton, cfg.heads)
                           if cfg.graph and cfg.graph_mode == "attention_bias" else None)
        self.norm_prompt = nn.LayerNorm(d) if prompt_attention else None
        per_block = cfg.prompt_kv == "per_block"
        self.prompt_attn = (Attention(d, cfg.heads, "math", cfg.dropout, project_context=per_block)
                            if prompt_attention else None)
        self.norm_mlp = _norm(cfg)
        self.mlp = Mlp(d, cfg.mlp_ratio, cfg.dropout)
        self.modulation = block_modulation(cfg)

    def forward(self, x: Tensor, c: Tensor | None, prompts: Tensor | None = None,
                prompt_kv: Tensor | None = None) -> Tensor:
        n, t, j, d = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation_terms(self.modulation, c)
        h = modulate(self.norm_attn(x), shift_a, scale_a).reshape(n * t, j, d)  # (N*T, J, D)
        bias = None if self.graph_bias is None else self.graph_bias().to(h.dtype)  # (H, J, J)
        branch = self.attn(h, bias=bias)  # (N*T, J, D)
        if self.graph is not None:
            branch = branch + self.graph(h)  # (N*T, J, D)
        x = x + gated(branch.view(n, t, j, d), gate_a)
        if self.prompt_attn is not None:
            q = self.norm_prompt(x).reshape(n, t * j, d)  # (N, T*J, D)
            x = x + self.prompt_attn(q, prompts, prompt_kv).view(n, t, j, d)
        return x + gated(self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m)), gate_m)


class TemporalBlock(nn.Module):
    """Attention over the T frames of each joint; per-frame FiLM shift/scale multiplied by the energy gain.

    Shapes: x (N, T, J, D), c (N, T or 1, D | 6D) or None, gain (N, T) or None -> (N, T, J, D).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm_attn = _norm(cfg)
        self.attn = Attention(d, cfg.heads, cfg.attention, cfg.dropout)
        self.norm_mlp = _norm(cfg)
        self.mlp = Mlp(d, cfg.mlp_ratio, cfg.dropout)
        self.modulation = block_modulation(cfg)

    def forward(self, x: Tensor, c: Tensor | None, gain: Tensor | None) -> Tensor:
        n, t, j, d = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation_terms(self.modulation, c)
        if gain is not None and shift_a is not None:
            g = gain[:, :, None, None].to(x.dtype)  # (N, T, 1, 1)
            shift_a, scale_a, shift_m, scale_m = (g * m for m in (shift_a, scale_a, shift_m, scale_m))
        h = modulate(self.norm_attn(x), shift_a, scale_a)  # (N, T, J, D)
        h = h.transpose(1, 2).reshape(n * j, t, d)  # (N*J, T, D)
        h = self.attn(h).view(n, j, t, d).transpose(1, 2)  # (N, T, J, D)
        x = x + gated(h, gate_a)
        return x + gated(self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m)), gate_m)


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
        self.embed_2d = nn.Linear(3 if cfg.joint_mask else 2, d)  # (x, y[, visibility flag]) -> D
        self.embed_3d = nn.Linear(3, d, bias=False)
        self.joint_embedding = nn.Parameter(0.02 * torch.randn(cfg.num_joints, d))  # (J, D)
        # (T, 1, D) on the input tokens; "additive": before the first temporal block, per token (T/p, 1, D)
        rows = cfg.frames // cfg.temporal_patch if cfg.conditioning == "additive" else cfg.frames
        self.frame_embedding = nn.Parameter(0.02 * torch.randn(rows, 1, d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.semantic = SemanticPrompts(skeleton, d, cfg.prompt_init) if cfg.semantic_prompts else None
        attending = cfg.prompt_attention_blocks  # the first spatial blocks cross-attend to the prompts
        shared_kv = cfg.prompt_kv == "shared" and attending > 0
        self.prompt_key_value = nn.Linear(d, 2 * d) if shared_kv else None
        self.motion = (MotionPrompts(skeleton, d, cfg.motion_features, cfg.energy_sigma,
                                     cfg.motion_prompt_target) if cfg.motion_prompts else None)
        self.energy = (TemporalEnergyRegulator(cfg.energy_sigma, cfg.energy_kind)
                       if cfg.energy_regulator else None)
        # additive: the gain's way in is a learned per-frame term g_t * gain_embedding added to the tokens
        additive_gain = cfg.conditioning == "additive" and cfg.gains_in_network
        self.gain_embedding = nn.Parameter(0.02 * torch.randn(d)) if additive_gain else None
        self.shared_modulation = (nn.Sequential(nn.SiLU(), _modulation(d, 6))
                                  if cfg.conditioning == "adaln_single" else None)
        self.spatial_blocks = nn.ModuleList(
            SpatialBlock(cfg, skeleton, prompt_attention=i < attending) for i in range(cfg.depth))
        self.temporal_blocks = nn.ModuleList(TemporalBlock(cfg) for _ in range(cfg.depth))
        self.final_norm = _norm(cfg)
        self.final_modulation = block_modulation(cfg, chunks=2)
        p = cfg.temporal_patch  # p frames per token: merged after the embeddings, split again by the head
        self.patch_in = nn.Linear(p * d, d) if p > 1 else None
        self.head = nn.Linear(d, 3 * p)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.head.bias)
        self.root = skeleton.root

    def encode_condition(self, x2d: Tensor, visible: Tensor | None = None) -> dict[str, Tensor]:
        """Everything independent of the noisy pose, computed once per window.

        Args:
            x2d: (B, T, J, 2) normalised screen coordinates, T == cfg.frames.
            visible: (B, T, J) bool, True where the joint is seen, False where it is missing (its x2d is
                a placeholder and is never read). Only for ``cfg.joint_mask`` models (else ``ValueError``);
                ``None`` = every joint seen.

        Returns:
            ``tokens`` (B, T, J, D) 2D + joint (+ frame, except with "additive" conditioning) (+ part
            prompt) embedding; with semantic prompts ``prompt_kv`` (B, P, 2D) their keys/values
            (``prompt_kv="shared"``) or ``prompts`` (B, P, D) (``"per_block"``); with motion prompts in
            the conditioning ``frame_prompt`` (B, T, D) (target "tokens": added to ``tokens``); with the
            energy regulator ``energy`` (B, T) and the gain ``GAIN_KEY`` (B, T) in (0, 1); with
            ``cfg.joint_mask`` the mask used, ``visible`` (B, T, J) bool. Batch-independent values are
            expanded, not copied.
        """
        b, t, j, _ = x2d.shape
        if t != self.cfg.frames or j != self.cfg.num_joints:
            expected = f"(B, {self.cfg.frames}, {self.cfg.num_joints}, 2)"
            raise ValueError(f"x2d must be {expected}, got {tuple(x2d.shape)}")
        visible = self.visibility(x2d, visible)  # (B, T, J) bool, or None without the mask input
        if visible is None:
            tokens = self.embed_2d(x2d) + self.joint_embedding  # (B, T, J, D)
        else:
            seen = visible[..., None]  # (B, T, J, 1)
            masked = torch.where(seen, x2d, torch.zeros_like(x2d))  # missing joints' coordinates -> 0
            tokens = self.embed_2d(torch.cat([masked, seen.to(x2d.dtype)], -1)) + self.joint_embedding
        if self.cfg.conditioning != "additive":  # additive: added before the first temporal block (MixSTE)
            tokens = tokens + self.frame_embedding
        cond: dict[str, Tensor] = {}
        if self.semantic is not None:
            prompts = self.semantic()  # (P, D)
            tokens = tokens + self.semantic.joint_tokens(prompts)  # (B, T, J, D)
            if self.prompt_key_value is not None:
                cond["prompt_kv"] = self.prompt_key_value(prompts).expand(b, -1, -1)  # (B, P, 2D), once
            else:
                cond["prompts"] = prompts.expand(b, -1, -1)  # (B, P, D)
        if self.motion is not None:
            motion = self.motion(x2d, visible)  # (B, T, D) per frame, or (B, T, J, D) per joint ("tokens")
            if self.cfg.motion_in_condition:
                cond["frame_prompt"] = motion
            else:
                tokens = tokens + motion
        cond["tokens"] = tokens
        if visible is not None:
            cond["visible"] = visible
        if self.energy is not None:
            cond["energy"], cond[GAIN_KEY] = self.energy(x2d, visible)  # (B, T), (B, T)
        return cond

    def visibility(self, x2d: Tensor, visible: Tensor | None) -> Tensor | None:
        """The (B, T, J) bool mask of a ``joint_mask`` model (all True when ``visible`` is None); ``None``
        for a model without the mask input, which refuses a mask (``ValueError``)."""
        if not self.cfg.joint_mask:
            if visible is not None:
                raise ValueError("this model has no missing-joint input (ModelConfig.joint_mask is false): "
                                 "it cannot take a visibility mask")
            return None
        if visible is None:
            return torch.ones(x2d.shape[:-1], dtype=torch.bool, device=x2d.device)
        if not isinstance(visible, Tensor) or visible.shape != x2d.shape[:-1]:
            shape = tuple(visible.shape) if isinstance(visible, Tensor) else type(visible).__name__
            raise ValueError(f"visible must be a {tuple(x2d.shape[:-1])} tensor like x2d's (B, T, J), "
                             f"got {shape}")
        return visible.to(device=x2d.device, dtype=torch.bool)

    def sampler_gain(self, cond: dict[str, Tensor]) -> Tensor | None:
        """The per-frame gain (B, T) in (0, 1) for the sampler's energy regulation, ``None`` without it."""
        return cond[GAIN_KEY] if self.energy is not None else None

    def no_weight_decay(self) -> set[str]:
        """Names of parameters to exclude from weight decay (timm convention): the energy regulator's map."""
        if self.energy is None:
            return set()
        return {f"energy.{name}" for name in self.energy.no_weight_decay()}

    def condition_vector(self, t: Tensor, cond: dict[str, Tensor], dtype: torch.dtype) -> Tensor:
        """c = MLP(sinusoid(t)) (N, 1, D), plus the motion prompt per frame (N, T, D) when it enters c."""
        c = self.time_mlp(timestep_embedding(t, self.cfg.width).to(dtype))[:, None]  # (N, 1, D)
        if self.cfg.motion_in_condition:
            c = c + cond["frame_prompt"]  # (N, T, D)
        return c

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
        c = self.condition_vector(t, cond, x.dtype)  # (N, T|1, D)
        gain = self.sampler_gain(cond) if self.cfg.gains_in_network else None  # (N, T) or None
        p = self.cfg.temporal_patch
        if p > 1:  # T' = T/p tokens per joint from here to the head
            x = self.patch_in(patch_frames(x, p))  # (N, T', J, D)
            c = mean_over_patches(c, p)  # (N, T'|1, D)
            gain = None if gain is None else mean_over_patches(gain, p)  # (N, T')
        if self.cfg.conditioning == "additive":
            x = x + c[:, :, None]  # (N, T, J, D): c added to every token once
            if self.gain_embedding is not None:
                x = x + gain[:, :, None, None].to(x.dtype) * self.gain_embedding
            block_c = None
        elif self.shared_modulation is not None:
            block_c = self.shared_modulation(c)  # (N, T|1, 6D): adaLN-single, once for all blocks
        else:
            block_c = c  # adaln: every block applies its own modulation layer to c
        prompts, prompt_kv = cond.get("prompts"), cond.get("prompt_kv")
        for i, (spatial, temporal) in enumerate(zip(self.spatial_blocks, self.temporal_blocks, strict=True)):
            x = spatial(x, block_c, prompts, prompt_kv)
            if i == 0 and self.cfg.conditioning == "additive":
                x = x + self.frame_embedding  # (N, T, J, D), before the first temporal block as MixSTE
            x = temporal(x, block_c, gain)
        shift, scale = modulation_terms(self.final_modulation, block_c, chunks=2)  # each (N, T|1, 1, D)
        out = self.head(modulate(self.final_norm(x), shift, scale))  # (N, T', J, 3p)
        if p > 1:
            out = unpatch_frames(out, p)  # (N, T, J, 3)
        return zero_root(out, self.root)

    def learned_adjacency(self) -> Tensor | None:
        """(L, J, J) learned graph of every spatial block (the normalised adjacency of the convolution, or the
        attention prior of the bias form: see ``graph.py``), or ``None`` without the graph."""
        if not self.cfg.graph:
            return None
        graphs = [b.graph if b.graph is not None else b.graph_bias for b in self.spatial_blocks]
        return torch.stack([graph.learned_adjacency() for graph in graphs])

    def flops_per_frame(self) -> float:
        """Analytic matmul FLOPs (2 x multiply-adds) of one network evaluation, per frame of a window.

        Counts every linear layer and attention matmul (not norms/activations); work done once per window
        (encode_condition, the timestep MLP, prompt keys/values) is divided by T.
        """
        cfg, d, j, t = self.cfg, self.cfg.width, self.cfg.num_joints, self.cfg.frames
        p = cfg.temporal_patch
        hidden, prompts = int(round(d * cfg.mlp_ratio)), len(PROMPT_NAMES)
        t_tokens = t // p  # the blocks' frame axis: one token per p frames
        # rows of c per token frame: c is per frame with motion prompts in c, else once per window
        cond_rows = 1.0 if cfg.motion_in_condition else 1.0 / t_tokens
        per_block_kv = cfg.prompt_kv == "per_block"
        block = j * (4 * d * d + 2 * d * hidden)  # q, kv, out, MLP
        if cfg.conditioning == "adaln":
            block += cond_rows * 6 * d * d  # the block's own modulation layer
        spatial = block + 2 * j * j * d  # + scores and weighted sum over J keys
        temporal = block + 2 * j * t_tokens * d  # + scores and weighted sum over T' keys
        if cfg.graph and cfg.graph_mode == "convolution":
            spatial += j * d * d + j * j * d  # the bias form adds no multiply-adds
        attending = cfg.prompt_attention_blocks  # spatial blocks with prompt cross-attention
        # q + out per joint, scores + sum over P keys (+ k/v per block), in the blocks with prompt attention
        prompt_attention = 2 * j * d * d + 2 * j * prompts * d + per_block_kv * 2 * prompts * d * d / t_tokens
        macs = cfg.depth * (spatial + temporal) + attending * prompt_attention
        # shared modulation (adaln_single) / final modulation (adaln), per token frame
        macs += cond_rows * d * d * {"adaln": 2, "adaln_single": 6, "additive": 0}[cfg.conditioning]
        macs /= p  # everything above runs once per token, i.e. per p frames
        macs += j * (5 + cfg.joint_mask) * d + j * d * 3  # 2D (+ visibility) + 3D embeddings, head
        macs += j * d * d if p > 1 else 0  # patch_in: Linear(p*D, D) once per p frames
        macs += 2 * d * d / t  # timestep MLP
        if cfg.motion_in_condition:
            macs += (4 * j + 6) * d + d * d
        elif cfg.motion_prompts:  # Linear(4, D) per token
            macs += j * 4 * d
        if cfg.semantic_prompts:  # projection of the prompt tokens (+ shared k/v), once per window
            shared_kv = not per_block_kv and attending > 0
            macs += prompts * PROMPT_EMBED_DIM * d / t + shared_kv * 2 * prompts * d * d / t
        return float(2 * macs)
