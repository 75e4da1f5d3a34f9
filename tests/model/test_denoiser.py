"""Tests for posediffusion.model.denoiser: shapes, root, switches, energy gains, attention, FLOP count."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from posediffusion.config import (
    CONDITIONING_KINDS,
    D3DP_BASELINE,
    GRAPH_MODES,
    MOTION_PROMPT_TARGETS,
    PAPER_DESIGN,
    ModelConfig,
    preset,
)
from posediffusion.model.denoiser import (
    Attention,
    Denoiser,
    mean_over_patches,
    patch_frames,
    timestep_embedding,
    unpatch_frames,
)
from posediffusion.model.pose_diffusion import PoseDiffusion
from posediffusion.skeleton import zero_root

J = 17
SWITCHES = ("graph", "semantic_prompts", "motion_prompts", "energy_regulator")


def small_config(**overrides) -> ModelConfig:
    # one token per frame unless a test asks for patches (pinned: 5 frames take no p > 1)
    base = ModelConfig(width=16, depth=2, heads=4, frames=5, temporal_patch=1)
    return dataclasses.replace(base, **overrides)


def inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x2d = 0.3 * torch.randn(batch, cfg.frames, J, 2, generator=g)
    x2d = x2d + torch.linspace(0, 0.2, cfg.frames)[None, :, None, None]  # some motion
    x_t = torch.randn(batch, cfg.frames, J, 3, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x2d, x_t, t


def run(net: Denoiser, x2d, x_t, t) -> torch.Tensor:
    with torch.no_grad():
        return net(x_t, t, net.encode_condition(x2d))


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_preset_shapes_and_root(name):
    cfg = preset(name).model
    net = Denoiser(cfg)
    x2d, x_t, t = inputs(cfg, batch=1)
    out = run(net, x2d, x_t, t)
    assert out.shape == (1, cfg.frames, J, 3)
    assert (out[:, :, 0] == 0).all() and out[:, :, 1:].abs().sum() > 0


def test_paper_preset_one_forward():
    cfg = preset("paper").model
    assert (cfg.width, cfg.depth, cfg.frames) == (512, 8, 243)
    net = Denoiser(cfg)
    x2d, x_t, t = inputs(cfg, batch=1)
    out = run(net, x2d, x_t, t)
    assert out.shape == (1, 243, J, 3) and torch.isfinite(out).all()


def test_condition_keys_and_shapes():
    cfg = small_config()
    cond = Denoiser(cfg).encode_condition(inputs(cfg)[0])
    assert cond["tokens"].shape == (2, 5, J, 16)
    assert cond["prompt_kv"].shape == (2, 7, 32)  # shared prompt keys/values, computed once per window
    assert cond["frame_prompt"].shape == (2, 5, 16)
    assert cond["energy"].shape == cond["sampler_gain"].shape == (2, 5)
    assert ((cond["sampler_gain"] > 0) & (cond["sampler_gain"] <= 1)).all()
    per_block = Denoiser(small_config(prompt_kv="per_block")).encode_condition(inputs(cfg)[0])
    assert per_block["prompts"].shape == (2, 7, 16) and "prompt_kv" not in per_block
    plain = Denoiser(small_config(**dict.fromkeys(SWITCHES, False))).encode_condition(inputs(cfg)[0])
    assert set(plain) == {"tokens"}


@pytest.mark.parametrize("conditioning", CONDITIONING_KINDS)
@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_the_output(switch, conditioning):
    """Each switch changes the network's output: the regulator only where its gains act in the network
    (energy_uses="all", the paper's design); by default (energy_uses="smoothing") they act in the sampler's
    and the loss's smoothing only (test_pose_diffusion)."""
    torch.manual_seed(0)
    uses = {"energy_uses": "all"} if switch == "energy_regulator" else {}
    full = Denoiser(small_config(conditioning=conditioning, **uses))
    reduced = Denoiser(small_config(conditioning=conditioning, **uses, **{switch: False}))
    missing, _ = reduced.load_state_dict(full.state_dict(), strict=False)
    assert missing == []  # every shared weight is identical: differences come from the component
    args = inputs(full.cfg)
    assert not torch.allclose(run(full, *args), run(reduced, *args), atol=1e-6)


def test_additive_conditioning_is_the_d3dp_denoiser():
    """METHOD.md: Linear(5 -> D) + joint embedding + timestep embedding added once, plain pre-norm blocks
    (affine LayerNorm), the frame embedding before the first temporal block, LayerNorm -> Linear(D, 3)."""
    cfg = small_config(**{k: v for k, v in D3DP_BASELINE.items() if k != "smoothing"})  # model fields
    net = Denoiser(cfg)
    names = {name for name, _ in net.named_parameters()}
    assert not any("modulation" in name or "prompt" in name or "graph" in name or "energy" in name
                   for name in names)
    assert {"spatial_blocks.0.norm_attn.weight", "final_norm.weight", "final_norm.bias"} <= names
    x2d, x_t, t = inputs(cfg)
    with torch.no_grad():  # the forward pass written out
        x = net.embed_2d(x2d) + net.joint_embedding + net.embed_3d(x_t)
        x = x + net.time_mlp(timestep_embedding(t, 16))[:, None, None]  # timestep embedding, added once
        for i in range(cfg.depth):
            x = net.spatial_blocks[i](x, None)
            x = x + net.frame_embedding if i == 0 else x  # before the first temporal block
            x = net.temporal_blocks[i](x, None, None)
        expected = zero_root(net.head(net.final_norm(x)))
    assert torch.allclose(run(net, x2d, x_t, t), expected, atol=1e-6)


def test_adaln_single_shares_one_modulation_and_learns_per_block_offsets():
    net = Denoiser(small_config())
    mods = [name for name, _ in net.named_parameters() if "modulation" in name]
    blocks = [f"{kind}_blocks.{i}.modulation.offsets" for kind in ("spatial", "temporal") for i in range(2)]
    shared = ["shared_modulation.1.weight", "shared_modulation.1.bias", "final_modulation.offsets"]
    assert sorted(mods) == sorted(shared + blocks)
    assert net.spatial_blocks[0].modulation.offsets.shape == (6 * 16,)
    x2d, x_t, t = inputs(net.cfg)
    net.train()
    net(x_t, t, net.encode_condition(x2d)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in net.named_parameters() if n in mods)


def test_parameter_counts_of_the_paper_preset():
    """Issue 10: the D3DP baseline at paper size has ~34 M parameters; the full model stays within 1.3x."""
    baseline = PoseDiffusion.from_preset("paper", **D3DP_BASELINE).count_parameters()
    full = PoseDiffusion.from_preset("paper").count_parameters()
    paper_design = PoseDiffusion.from_preset("paper", **PAPER_DESIGN).count_parameters()
    assert 33e6 <= baseline <= 36e6
    assert full <= 45e6 and full <= 1.3 * baseline
    assert full < paper_design <= 45e6  # the bias form of the graph has no linear layer
    # the original network (per-block adaLN and prompt keys/values), as old checkpoints store it
    legacy = PoseDiffusion.from_preset("paper", **PAPER_DESIGN, conditioning="adaln", prompt_kv="per_block")
    assert 70e6 < legacy.count_parameters() < 72e6


def test_energy_gains_change_the_output():
    torch.manual_seed(0)
    net = Denoiser(small_config(energy_uses="all"))
    x2d, x_t, t = inputs(net.cfg)
    with torch.no_grad():
        cond = net.encode_condition(x2d)
        out = net(x_t, t, cond)
        cond["sampler_gain"] = cond["sampler_gain"] * 0.5
        assert not torch.allclose(net(x_t, t, cond), out, atol=1e-6)


def test_batch_elements_are_independent():
    torch.manual_seed(0)
    net = Denoiser(small_config())
    x2d, x_t, t = inputs(net.cfg, batch=3)
    out = run(net, x2d, x_t, t)
    x2d_b, x_t_b = x2d.clone(), x_t.clone()
    x2d_b[1] += 1.0
    x_t_b[1] -= 1.0
    out_b = run(net, x2d_b, x_t_b, t)
    assert torch.equal(out_b[[0, 2]], out[[0, 2]]) and not torch.allclose(out_b[1], out[1])


def test_sdpa_and_math_attention_agree():
    torch.manual_seed(0)
    net_sdpa = Denoiser(small_config(attention="sdpa"))
    net_math = Denoiser(small_config(attention="math"))
    net_math.load_state_dict(net_sdpa.state_dict())
    args = inputs(net_sdpa.cfg)
    assert torch.allclose(run(net_sdpa, *args), run(net_math, *args), atol=1e-5)


def test_attention_matches_hand_loop():
    torch.manual_seed(0)
    attn = Attention(width=8, heads=2, kind="math")
    x, ctx = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    q = attn.query(x)[0]
    k, v = attn.key_value(ctx)[0].split(8, dim=-1)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        weights = torch.softmax(q[:, sl] @ k[:, sl].T / 2.0, dim=-1)  # sqrt(head dim 4) = 2
        heads.append(weights @ v[:, sl])
    expected = attn.out(torch.cat(heads, dim=-1))
    assert torch.allclose(attn(x, ctx)[0], expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["math", "sdpa"])
def test_attention_bias_is_added_to_the_logits(kind):
    """A bias of 0 on the diagonal and -1e9 elsewhere makes every query attend to itself only: the output is
    the output layer of the query's own value (independent of the softmax code)."""
    torch.manual_seed(0)
    attn = Attention(width=8, heads=2, kind=kind)
    x = torch.randn(3, 5, 8)
    bias = torch.full((2, 5, 5), -1e9).diagonal_scatter(torch.zeros(2, 5), dim1=-2, dim2=-1)
    _, v = attn.key_value(x).split(8, dim=-1)
    assert torch.allclose(attn(x, bias=bias), attn.out(v), atol=1e-5)
    assert not torch.allclose(attn(x), attn.out(v), atol=1e-3)


def test_graph_bias_form_replaces_the_convolution():
    """graph_mode="attention_bias": no graph convolution, an (H, J, J) bias table per spatial block that
    changes the output and gets a gradient; parameters: -(D^2 + J^2 + D) + H J^2 per block."""
    conv, bias = Denoiser(small_config(graph_mode="convolution")), Denoiser(small_config())
    assert bias.cfg.graph_mode == "attention_bias"  # the default
    for block in bias.spatial_blocks:
        assert block.graph is None and block.graph_bias.residual.shape == (4, J, J)
    def count(net: Denoiser) -> int:
        return sum(p.numel() for p in net.parameters())

    assert count(conv) - count(bias) == 2 * (16 * 16 + J * J + 16 - 4 * J * J)
    x2d, x_t, t = inputs(bias.cfg)
    before = run(bias, x2d, x_t, t)
    with torch.no_grad():
        bias.spatial_blocks[0].graph_bias.residual[:, :, 3] = -30.0  # no joint attends to the right ankle
    assert not torch.allclose(run(bias, x2d, x_t, t), before, atol=1e-4)
    bias(x_t, t, bias.encode_condition(x2d)).square().sum().backward()
    assert all(block.graph_bias.residual.grad.abs().sum() > 0 for block in bias.spatial_blocks)
    assert bias.learned_adjacency().shape == (2, J, J)
    with pytest.raises(ValueError, match="graph_mode"):
        small_config(graph_mode="gcn")


def test_wrong_frames_rejected():
    net = Denoiser(small_config())
    with pytest.raises(ValueError, match="x2d must be"):
        net.encode_condition(torch.zeros(1, 4, J, 2))


def test_follows_input_dtype():
    net = Denoiser(small_config()).double()
    x2d, x_t, t = inputs(net.cfg)
    assert run(net, x2d.double(), x_t.double(), t).dtype == torch.float64


def _count_flops(net: Denoiser, cfg: ModelConfig) -> float:
    """Linear and attention matmul FLOPs of one forward pass, counted with hooks, per frame."""
    total = [0.0]

    def linear_hook(module: nn.Linear, args, _out) -> None:
        total[0] += 2 * args[0].numel() * module.out_features

    def attention_hook(module: Attention, args, kwargs, _out) -> None:
        x = args[0]
        given = [a for a in (*args[1:], kwargs.get("context"), kwargs.get("key_value")) if a is not None]
        keys = given[0].shape[1] if given else x.shape[1]
        total[0] += 2 * 2 * x.shape[0] * x.shape[1] * keys * x.shape[2]

    def graph_hook(module, args, _out) -> None:
        total[0] += 2 * args[0].shape[0] * J * J * args[0].shape[2]

    for module in net.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(linear_hook)
        elif isinstance(module, Attention):
            module.register_forward_hook(attention_hook, with_kwargs=True)
        elif type(module).__name__ == "AnatomicalGraph":
            module.register_forward_hook(graph_hook)
    run(net, *inputs(cfg, batch=1))
    return total[0] / cfg.frames


@pytest.mark.parametrize(("graph_mode", "motion_target"),
                         list(zip(GRAPH_MODES, MOTION_PROMPT_TARGETS, strict=True)))
@pytest.mark.parametrize("prompt_blocks", [None, 1, 0])
@pytest.mark.parametrize("prompt_kv", ["shared", "per_block"])
@pytest.mark.parametrize("conditioning", CONDITIONING_KINDS)
@pytest.mark.parametrize("switches_on", [True, False])
def test_flops_per_frame_matches_hook_count(switches_on, conditioning, prompt_kv, prompt_blocks, graph_mode,
                                            motion_target):
    """Count linear and attention matmuls with forward hooks (independent of the analytic formula)."""
    cfg = small_config(conditioning=conditioning, prompt_kv=prompt_kv, prompt_blocks=prompt_blocks,
                       graph_mode=graph_mode, motion_prompt_target=motion_target,
                       **dict.fromkeys(SWITCHES, switches_on))
    net = Denoiser(cfg)
    assert net.flops_per_frame() == pytest.approx(_count_flops(net, cfg), rel=1e-9)


def test_patch_frames_groups_consecutive_frames_by_hand():
    x = torch.arange(2 * 6 * 3 * 2, dtype=torch.float32).view(2, 6, 3, 2)  # (N, T, J, C)
    patched = patch_frames(x, 3)  # (2, 2, 3, 6)
    assert patched.shape == (2, 2, 3, 6)
    for n in range(2):
        for k in range(2):
            for j in range(3):
                expected = [float(x[n, 3 * k + i, j, c]) for i in range(3) for c in range(2)]
                assert patched[n, k, j].tolist() == expected
    assert torch.equal(unpatch_frames(patched, 3), x)
    gains = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 9.0]])
    assert mean_over_patches(gains, 3).tolist() == [[2.0, 6.0]]
    assert mean_over_patches(torch.ones(1, 1, 4), 3).shape == (1, 1, 4)  # one c per window passes


@pytest.mark.parametrize("energy_uses", ["smoothing", "all"])
@pytest.mark.parametrize("conditioning", CONDITIONING_KINDS)
@pytest.mark.parametrize("patch", [2, 3])
def test_temporal_patch_shapes_root_gradients_and_flops(patch, conditioning, energy_uses):
    """temporal_patch=p: T/p tokens per joint in the blocks, every frame predicted, root 0, every parameter
    trained; the analytic FLOPs match the hook count, and the blocks cost about 1/p of the unpatched net."""
    cfg = small_config(frames=6, temporal_patch=patch, conditioning=conditioning, energy_uses=energy_uses)
    net = Denoiser(cfg)
    x2d, x_t, t = inputs(cfg)
    out = net(x_t, t, net.encode_condition(x2d))
    assert out.shape == (2, 6, J, 3) and torch.equal(out[:, :, 0], torch.zeros(2, 6, 3))
    out.square().sum().backward()
    unused = [n for n, prm in net.named_parameters() if prm.grad is None]
    # "smoothing": the regulator's map trains through the loss's smoothing weight, not the network output
    assert unused == ([] if energy_uses == "all" else ["energy.slope_raw", "energy.offset"])
    assert net.flops_per_frame() == pytest.approx(_count_flops(net, cfg), rel=1e-9)
    plain = Denoiser(small_config(frames=6, conditioning=conditioning, energy_uses=energy_uses))
    assert net.flops_per_frame() < plain.flops_per_frame() * (1.0 / patch + 0.35)


def test_temporal_patch_is_validated():
    with pytest.raises(ValueError, match="temporal_patch must be an integer dividing frames"):
        small_config(frames=5, temporal_patch=2)
    assert Denoiser(small_config()).patch_in is None  # p = 1: the unpatched network


@pytest.mark.parametrize("prompt_kv", ["shared", "per_block"])
def test_prompt_blocks_limits_the_cross_attention_to_the_first_blocks(prompt_kv):
    """prompt_blocks=k: only the first k spatial blocks attend to the prompts; 0 keeps the part tokens only.
    Every parameter gets a gradient (nothing unused, which distributed training would reject)."""
    counts = {}
    for blocks in (None, 2, 1, 0):
        # energy_uses="all": the regulator's map acts in the network too, so every parameter is reached here
        net = Denoiser(small_config(prompt_blocks=blocks, prompt_kv=prompt_kv, energy_uses="all"))
        attending = [block.prompt_attn is not None for block in net.spatial_blocks]
        assert attending == [i < (2 if blocks is None else blocks) for i in range(2)]
        assert net.semantic is not None  # the part tokens stay
        x2d, x_t, t = inputs(net.cfg)
        net(x_t, t, net.encode_condition(x2d)).square().sum().backward()
        assert [n for n, p in net.named_parameters() if p.grad is None] == []
        counts[blocks] = sum(p.numel() for p in net.parameters())
    one_block = sum(p.numel() for p in Denoiser(small_config(prompt_kv=prompt_kv)).spatial_blocks[0]
                    .prompt_attn.parameters()) + 2 * 16  # + its LayerNorm
    assert counts[None] == counts[2] and counts[2] - counts[1] == one_block
    assert counts[1] - counts[0] == one_block + (2 * 16 * 16 + 2 * 16 if prompt_kv == "shared" else 0)
    for bad in (-1, 3, True, 1.5):
        with pytest.raises(ValueError, match="prompt_blocks"):
            small_config(prompt_blocks=bad)
