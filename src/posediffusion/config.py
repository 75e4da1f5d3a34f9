"""Every configuration of the package: dataclasses with validation, named presets, YAML in/out.

A :class:`PoseDiffusionConfig` holds one :class:`ModelConfig` and one :class:`DiffusionConfig` (what a
checkpoint needs to rebuild the network). Presets are named override sets (``PRESETS``): ``paper`` is the
published size; ``base``, ``small`` and ``tiny`` are sized for the 2-core CPUs measured in
``docs/model.md``. A :class:`TrainConfig` (with its :class:`DataConfig`) describes a training run and an
:class:`EvalConfig` an evaluation. All of them are built from plain (nested) dicts by :func:`build_config`
(``config_builder.py``, re-exported here),
so YAML files, checkpoints and command lines get the same validation: unknown keys and bad values are a
``ValueError`` naming their source. The command-line flags are derived from these dataclasses
(``commands/flags.py``): each field's docstring is its ``--help``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posediffusion.config_builder import (  # noqa: F401 - re-exported: one import path for configs
    build_config,
    config_to_dict,
    load_config_yaml,
    save_config_yaml,
)

ATTENTION_KINDS = ("sdpa", "math")
#: Upper bounds of the network sizes, far above any published lifter (paper: D=512, L=8, T=243): a config
#: from an untrusted checkpoint or file cannot make the constructor allocate terabytes.
MODEL_LIMITS = {"num_joints": 256, "frames": 8192, "width": 8192, "depth": 128, "heads": 128,
                "mlp_ratio": 16, "graph_hops": 64, "temporal_patch": 64}
PROMPT_INITS = ("text", "random")
#: How the conditioning vector c (timestep embedding + motion prompt) enters the blocks (docs/model.md).
CONDITIONING_KINDS = ("adaln", "adaln_single", "additive")
#: Keys/values of the semantic prompts: one projection shared by all blocks, or one per block (legacy).
PROMPT_KV_KINDS = ("shared", "per_block")
#: Motion-prompt features: smoothed, body-normalised and tanh-bounded, or the raw x20 differences (legacy).
MOTION_FEATURE_KINDS = ("bounded", "raw_2d")
#: Motion energy of the regulator: smoothed body-normalised speed, or raw |v| + |a| of the 2D (legacy).
ENERGY_KINDS = ("smoothed_speed", "raw_2d")
#: Where the regulator's per-frame gains act: the temporal blocks, the sampler's noise and the smoothing
#: ("all", the paper's design), or only the smoothing weight (the default since 2026-11-30, docs/model.md).
ENERGY_USES = ("all", "smoothing")
#: How the anatomical graph enters the spatial blocks: a graph convolution beside the attention (the paper's
#: design) or a per-head additive bias on the attention logits (the default since 2026-11-30, docs/model.md).
GRAPH_MODES = ("convolution", "attention_bias")
#: Where the motion prompts enter: the frame's conditioning (the paper's design), or each joint's token.
MOTION_PROMPT_TARGETS = ("condition", "tokens")
#: When the sampler's temporal smoothing applies: on every model, or only with the energy regulator (legacy).
SMOOTHING_MODES = ("always", "with_regulator")
#: Training timestep distributions (``diffusion.sample_timesteps``).
TIMESTEP_SAMPLINGS = ("uniform", "linear")
AMP_MODES = ("auto", "none", "bf16", "fp16")
BUDGET_CLOCKS = ("wall", "cpu")
WEIGHT_CHOICES = ("auto", "ema", "raw")
#: Which sequences ``evaluate`` scores: the test subjects, or the validation takes the checkpoint's training
#: run held out (its ``val_fraction`` and ``seed``), for model and design selection without the test split.
EVAL_SPLITS = ("test", "validation")
#: Hypothesis aggregations of the evaluation protocol (docs/metrics.md); the last two are ORACLES.
AGGREGATIONS = ("p-agg", "j-agg", "j-best", "p-best")
#: Root sources of J-Agg: estimated from 2D + intrinsics, the GT trajectory, or camera-free.
ROOT_SOURCES = ("estimated", "ground_truth", "weak_perspective")
#: Published optimiser defaults (D3DP / the seed): lr, per-epoch decay; the ``paper`` preset's recipe.
PUBLISHED_LR = {"h36m": (6e-5, 0.993), "3dhp": (7e-5, 0.995)}
LR_SCHEDULES = ("exponential", "cosine")
#: Training recipe per preset: what ``None`` in a TrainConfig resolves to. ``paper`` keeps the seed's
#: per-epoch exponential decay (PUBLISHED_LR) so its commands reproduce; the CPU presets train on step or
#: time budgets shorter than an epoch, so they warm up and then follow a cosine to the end of the budget.
#: small's lr is the bundled model's (docs/bundled-model.md); base and tiny are scaled from it by width,
#: not tuned (docs/training.md).
PRESET_RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"lr_schedule": "exponential", "warmup_steps": 0},
    "base": {"lr": 3e-4, "lr_schedule": "cosine", "warmup_steps": 200},
    "small": {"lr": 4e-4, "lr_schedule": "cosine", "warmup_steps": 200},
    "tiny": {"lr": 1e-3, "lr_schedule": "cosine", "warmup_steps": 5},
}
DEFAULT_EMA_DECAY = 0.999
#: Default subjects when a Human3.6M-layout dataset does not name them (the seed's -str / -ste).
H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
#: Frames per batch of the paper (4 windows of 243 frames); the default batch size keeps it.
PAPER_FRAMES_PER_BATCH = 4 * 243

@dataclass
class ModelConfig:
    """The denoiser network (``model/denoiser.py``)."""

    num_joints: int = 17
    """J, joints per skeleton (Human3.6M-17 order)."""
    frames: int = 27
    """T, frames per window: the model takes exactly this many (longer sequences are windowed)."""
    width: int = 64
    """D, token width."""
    depth: int = 4
    """L, number of (spatial block, temporal block) pairs."""
    heads: int = 8
    """Attention heads; must divide ``width``."""
    mlp_ratio: float = 2.0
    """Hidden width of each block's MLP as a multiple of D."""
    attention: str = "sdpa"
    """Self-attention kernel: "sdpa" (torch fused) or "math" (matmul-softmax-matmul)."""
    dropout: float = 0.0
    """Dropout on attention weights and MLP outputs during training."""
    graph: bool = True
    """Anatomical graph diffuser: a learnable skeletal graph in every spatial block (how: ``graph_mode``)."""
    graph_hops: int = 1
    """Skeleton edges of the initial graph connect joints up to this many bones apart (1 = bones)."""
    graph_mode: str = "attention_bias"
    """How the graph acts: "attention_bias" (a learnable per-head bias on the spatial attention logits,
    initialised at -slope_h x bone distance; no extra linear layer; the default, chosen on validation
    takes) or "convolution" (a learnable-adjacency graph convolution beside spatial attention, the paper's
    design)."""
    semantic_prompts: bool = True
    """Body-part prompt tokens: joints receive their part's token and cross-attend to all 7 prompts."""
    prompt_init: str = "text"
    """Initial prompt tokens: "text" (stored sentence embeddings of part descriptions) or "random"."""
    motion_prompts: bool = True
    """Per-frame prompt from 2D velocity/acceleration/part speed, added to the frame conditioning."""
    motion_prompt_target: str = "condition"
    """Where the motion prompts enter: "condition" (one prompt per frame from all joints' motion, added to the
    frame's conditioning c; the paper's design) or "tokens" (each joint's own smoothed velocity and
    acceleration, Linear(4, D), added to that joint's token; needs the "bounded" features)."""
    energy_regulator: bool = True
    """Temporal energy regulator: per-frame gains for the temporal blocks and the sampler."""
    energy_sigma: float = 3.0
    """Temporal smoothing (frames): std of the Gaussian window of the local velocity fit (``smoothed_speed``
    energy and ``bounded`` motion features), or of the smoothing of the energy itself (``raw_2d``)."""
    conditioning: str = "adaln_single"
    """How c = timestep embedding (+ motion prompt) enters the network: "adaln_single" (one shared
    modulation MLP + per-block learned offsets), "adaln" (a modulation layer per block) or "additive"
    (c added to every token once, as D3DP/MixSTE; with all four switches off this is the D3DP baseline)."""
    prompt_kv: str = "shared"
    """Keys/values of the semantic prompts: "shared" (one projection for all blocks, computed once per
    window) or "per_block" (each block projects them)."""
    prompt_blocks: int | None = 1
    """How many spatial blocks (the first ones) cross-attend to the semantic prompts: 1 = the first (the
    default, chosen on validation takes), ``None`` = all (the paper's design), 0 = none (the prompts only
    enter as each joint's part token)."""
    motion_features: str = "bounded"
    """Motion-prompt features: "bounded" (smoothed velocity/acceleration in body sizes, tanh-compressed) or
    "raw_2d" (20 x raw finite differences, unbounded)."""
    energy_kind: str = "smoothed_speed"
    """Regulator energy: "smoothed_speed" (body-normalised speed of the temporally smoothed 2D above the
    detector-noise floor) or "raw_2d" (|velocity| + |acceleration| of the raw 2D)."""
    energy_uses: str = "smoothing"
    """Where the regulator's gains act: "smoothing" (only the smoothing weight s * (1 - g), in the sampler
    and the loss; the network and eta are untouched; the default, chosen on validation takes) or "all" (also
    the temporal blocks' FiLM modulation and the sampler's noise re-injection eta * g; the paper's design)."""
    temporal_patch: int = 9
    """Frames per temporal token, p: the blocks see T/p tokens per joint, each a linear map of p consecutive
    frames' tokens, and the head decodes p frames from each, so the blocks cost ~1/p per frame (a cheaper
    denoiser per frame; issue 14). 9 (the default since 2026-12-01, chosen on validation takes with the
    ``small`` preset's 27 frames: 3 tokens per joint; ``tiny`` uses 3); 1 = one token per frame (the paper's
    design). Must divide ``frames``. c and the gains are averaged over each token's frames ("additive" adds
    its frame embedding per token)."""
    joint_mask: bool = False
    """Missing-joint input: the 2D embedding gets a per-joint visibility flag (1 seen, 0 missing) as a third
    channel, missing joints' 2D coordinates are zeroed, and the motion prompts and energy ignore them, so
    the network infers joints the input lacks (train with ``joint_dropout``; docs/model.md). Needs the
    "bounded" motion features and the "smoothed_speed" energy."""

    def __post_init__(self) -> None:
        _check_positive(self, ("num_joints", "frames", "width", "depth", "heads", "mlp_ratio", "graph_hops",
                               "temporal_patch"))
        _check_bounds(self, MODEL_LIMITS)
        if isinstance(self.temporal_patch, bool) or not isinstance(self.temporal_patch, int) \
                or self.frames % self.temporal_patch:
            raise ValueError(f"ModelConfig: temporal_patch must be an integer dividing frames "
                             f"({self.frames}), got {self.temporal_patch!r} (1 = one token per frame; on "
                             f"the command line: --model temporal_patch=N)")
        if self.prompt_blocks is not None and (isinstance(self.prompt_blocks, bool)
                                               or not isinstance(self.prompt_blocks, int)
                                               or not 0 <= self.prompt_blocks <= self.depth):
            raise ValueError(f"ModelConfig: prompt_blocks must be null or an integer in "
                             f"[0, depth={self.depth}], got {self.prompt_blocks!r}")
        if self.width % self.heads:
            raise ValueError(f"ModelConfig: heads ({self.heads}) must divide width ({self.width})")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"ModelConfig: attention must be in {ATTENTION_KINDS}, got {self.attention!r}")
        if self.prompt_init not in PROMPT_INITS:
            raise ValueError(f"ModelConfig: prompt_init must be in {PROMPT_INITS}, got {self.prompt_init!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.energy_sigma < 0:
            raise ValueError(f"ModelConfig: energy_sigma must be >= 0, got {self.energy_sigma}")
        if self.energy_kind == "smoothed_speed" and not self.energy_sigma > 0:
            raise ValueError("ModelConfig: energy_sigma must be > 0 with energy_kind 'smoothed_speed'")
        for name, choices in (("conditioning", CONDITIONING_KINDS), ("prompt_kv", PROMPT_KV_KINDS),
                              ("motion_features", MOTION_FEATURE_KINDS), ("energy_kind", ENERGY_KINDS),
                              ("energy_uses", ENERGY_USES), ("graph_mode", GRAPH_MODES),
                              ("motion_prompt_target", MOTION_PROMPT_TARGETS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"ModelConfig: {name} must be in {choices}, got {getattr(self, name)!r}")
        for name in ("graph", "semantic_prompts", "motion_prompts", "energy_regulator", "joint_mask"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig: {name} must be true or false, got {getattr(self, name)!r}")
        if self.joint_mask and ((self.motion_prompts and self.motion_features == "raw_2d")
                                or (self.energy_regulator and self.energy_kind == "raw_2d")):
            raise ValueError("ModelConfig: joint_mask needs motion_features 'bounded' and energy_kind "
                             "'smoothed_speed' (the raw_2d features of old checkpoints take no mask)")
        if self.motion_prompt_target == "tokens" and self.motion_features != "bounded":
            raise ValueError("ModelConfig: motion_prompt_target 'tokens' needs motion_features 'bounded'")

    @property
    def motion_in_condition(self) -> bool:
        """Whether the motion prompts enter the (then per-frame) conditioning c: target "condition"."""
        return self.motion_prompts and self.motion_prompt_target == "condition"

    @property
    def gains_in_network(self) -> bool:
        """Whether the regulator's per-frame gains act in the network (the temporal blocks' modulation) and
        in the sampler's noise re-injection eta * g: the regulator is on with ``energy_uses == "all"``."""
        return self.energy_regulator and self.energy_uses == "all"

    @property
    def prompt_attention_blocks(self) -> int:
        """How many spatial blocks (the first ones) cross-attend to the semantic prompts: ``prompt_blocks``,
        all ``depth`` when it is ``None``, 0 without semantic prompts."""
        if not self.semantic_prompts:
            return 0
        return self.depth if self.prompt_blocks is None else self.prompt_blocks


@dataclass
class DiffusionConfig:
    """The diffusion process (``diffusion.py``): schedule, training loss and DDIM sampler settings."""

    num_steps: int = 1000
    """Forward-process steps of the cosine schedule."""
    s: float = 0.008
    """Offset of the cosine schedule."""
    scale: float = 1.0
    """Scale applied to the clean 3D pose (metres) before noising."""
    clamp: float = 1.1
    """Noisy poses are clamped to +-clamp * scale."""
    velocity_weight: float = 0.0
    """Weight of the velocity term added to the MPJPE training loss (0 = MPJPE only)."""
    eta: float = 1.0
    """DDIM stochasticity (0 = deterministic DDIM, 1 = DDPM-like variance)."""
    antithetic: bool = True
    """Draw the sampler's noise for hypotheses in antithetic pairs (n, -n): each hypothesis is a draw of the
    same sampler, but the pairs' deviations cancel to first order when hypotheses are averaged (P-Agg).
    Chosen on validation takes (2026-12-01, ``benchmarks/antithetic.py``); checkpoints written before it
    existed sample independently (:data:`LEGACY_MODEL_DEFAULTS`)."""
    smoothing: float = 1.0
    """Strength s of the temporal smoothing of the x0 estimate: per-frame weight s * (1 - gain) with the
    energy regulator, the constant s without it (0 = off). The default 1.0 goes with the regulator's default
    ``energy_uses="smoothing"``; the paper's design used 0.5 (``PAPER_DESIGN``)."""
    smoothing_mode: str = "always"
    """"always": the smoothing applies to every model (independent of ``energy_regulator``);
    "with_regulator": only models with the energy regulator smooth (the behaviour of old checkpoints)."""
    smoothing_in_loss: bool = True
    """Apply the same per-frame smoothing to the network's x0 in the training loss, so the sampler's
    operator (and the gain that drives it) is trained; false: a sampler-only post-process."""
    timestep_sampling: str = "uniform"
    """Training timesteps: "uniform" (D3DP) or "linear" (density proportional to t: more training at the
    high noise levels where the DDIM sampler starts, none wasted near t = 0)."""

    def __post_init__(self) -> None:
        _check_positive(self, ("num_steps", "s", "scale", "clamp"))
        _check_bounds(self, {"num_steps": 100_000})
        if self.velocity_weight < 0:
            raise ValueError(f"DiffusionConfig: velocity_weight must be >= 0, got {self.velocity_weight}")
        if self.eta < 0:
            raise ValueError(f"DiffusionConfig: eta must be >= 0, got {self.eta}")
        if not 0.0 <= self.smoothing <= 1.0:
            raise ValueError(f"DiffusionConfig: smoothing must be in [0, 1], got {self.smoothing}")
        if self.smoothing_mode not in SMOOTHING_MODES:
            raise ValueError(f"DiffusionConfig: smoothing_mode must be in {SMOOTHING_MODES}, "
                             f"got {self.smoothing_mode!r}")
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise ValueError(f"DiffusionConfig: timestep_sampling must be in {TIMESTEP_SAMPLINGS}, "
                             f"got {self.timestep_sampling!r}")
        if not isinstance(self.smoothing_in_loss, bool):
            raise ValueError(f"DiffusionConfig: smoothing_in_loss must be true or false, "
                             f"got {self.smoothing_in_loss!r}")


@dataclass
class PoseDiffusionConfig:
    """Everything needed to rebuild a :class:`~posediffusion.model.PoseDiffusion` (stored in checkpoints)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict ``{"model": {...}, "diffusion": {...}}`` (YAML/JSON friendly)."""
        return {"model": dataclasses.asdict(self.model), "diffusion": dataclasses.asdict(self.diffusion)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> PoseDiffusionConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys raise ``ValueError``."""
        if isinstance(data, dict) and set(data) - {"model", "diffusion"}:
            unknown = sorted(set(data) - {"model", "diffusion"})
            raise ValueError(f"{source}: unknown section(s) {unknown}; expected 'model', 'diffusion'")
        return build_config(cls, data, source)

    @classmethod
    def from_checkpoint_dict(cls, data: dict[str, Any], source: str = "checkpoint") -> PoseDiffusionConfig:
        """:meth:`from_dict` for a STORED config: keys it lacks take :data:`LEGACY_MODEL_DEFAULTS`
        (the architecture the checkpoint was trained with), not today's defaults."""
        return cls.from_dict(with_legacy_defaults(data), source)

    def with_overrides(self, **overrides: Any) -> PoseDiffusionConfig:
        """Copy with flat overrides: each key is a ModelConfig or DiffusionConfig field name."""
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        diffusion_fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
        unknown = set(overrides) - model_fields - diffusion_fields
        if unknown:
            raise ValueError(
                f"unknown config field(s) {sorted(unknown)}; valid: {sorted(model_fields | diffusion_fields)}"
            )
        model_kw = {k: v for k, v in overrides.items() if k in model_fields}
        diffusion_kw = {k: v for k, v in overrides.items() if k in diffusion_fields}
        return PoseDiffusionConfig(
            model=dataclasses.replace(self.model, **model_kw),
            diffusion=dataclasses.replace(self.diffusion, **diffusion_kw),
        )


#: Values of config keys that checkpoints written before they existed lack: such a checkpoint was trained
#: with per-block adaLN, per-block prompt keys/values, raw-difference motion features and energy, no
#: missing-joint input, a sampler smoothing that only the regulator switched on (never in the loss) and
#: independent noise for every hypothesis (no antithetic pairs).
#: (``joint_mask`` False is also today's default; it is listed so that stays true if the default changes.)
#: :func:`with_legacy_defaults` fills them in when a stored config is read (``checkpoint.read_checkpoint``
#: / ``build_model``), so old checkpoints rebuild the network they were trained as while new models get
#: the new defaults.
LEGACY_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"conditioning": "adaln", "prompt_kv": "per_block", "motion_features": "raw_2d",
              "energy_kind": "raw_2d", "energy_sigma": 1.0, "energy_uses": "all", "joint_mask": False,
              "prompt_blocks": None, "graph_mode": "convolution", "motion_prompt_target": "condition",
              "temporal_patch": 1},
    "diffusion": {"smoothing_mode": "with_regulator", "smoothing_in_loss": False,
                  "timestep_sampling": "uniform", "smoothing": 0.5, "antithetic": False},
}


def with_legacy_defaults(data: Any) -> Any:
    """Copy of a stored ``{"model": ..., "diffusion": ...}`` config dict with the keys it lacks taken from
    :data:`LEGACY_MODEL_DEFAULTS` (present keys are kept; anything but a mapping is returned unchanged,
    for :meth:`PoseDiffusionConfig.from_dict` to reject)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for section, legacy in LEGACY_MODEL_DEFAULTS.items():
        values = out.get(section, {})
        if isinstance(values, dict):
            out[section] = {**legacy, **values}
    return out


#: Overrides that restore the paper's design of the three components (the defaults until 2026-11-30): the
#: graph as a convolution branch, prompt cross-attention in every spatial block, the regulator's gains in
#: the temporal blocks, the sampler's noise and the smoothing (strength 0.5):
#: ``preset(name, **PAPER_DESIGN)``.
PAPER_DESIGN: dict[str, Any] = {"graph_mode": "convolution", "prompt_blocks": None, "energy_uses": "all",
                                "smoothing": 0.5, "temporal_patch": 1}

#: The same keys at the package defaults (chosen on validation takes, 2026-11-30; the temporal patches
#: 2026-12-01): the graph as an attention bias, prompt cross-attention in the first spatial block, the
#: regulator's gains setting only the smoothing weight (strength 1), 9 frames per temporal token. Puts a
#: config that started from ``PAPER_DESIGN`` back to the default.
DEFAULT_DESIGN: dict[str, Any] = {"graph_mode": "attention_bias", "prompt_blocks": 1,
                                  "energy_uses": "smoothing", "smoothing": 1.0, "temporal_patch": 9}

#: Overrides that turn any preset into the plain D3DP lifter of docs/model.md ("the baseline"): no
#: component, timestep embedding added once to the tokens, no sampler smoothing.
D3DP_BASELINE: dict[str, Any] = {"graph": False, "semantic_prompts": False, "motion_prompts": False,
                                 "energy_regulator": False, "conditioning": "additive", "smoothing": 0.0,
                                 "temporal_patch": 1}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"width": 512, "depth": 8, "heads": 8, "frames": 243, "attention": "sdpa"},
    "base": {"width": 128, "depth": 4, "heads": 8, "frames": 81, "attention": "sdpa"},
    "small": {"width": 64, "depth": 4, "heads": 8, "frames": 27, "attention": "math"},
    "tiny": {"width": 32, "depth": 2, "heads": 4, "frames": 9, "attention": "sdpa", "temporal_patch": 3},
}
"""Named presets: flat overrides of ModelConfig/DiffusionConfig defaults. The attention kernel of each is
the faster one measured on the 2-core CPU (docs/model.md)."""


def preset(name: str, **overrides: Any) -> PoseDiffusionConfig:
    """The config of preset ``name`` with flat ``overrides`` (any ModelConfig/DiffusionConfig field)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PoseDiffusionConfig().with_overrides(**PRESETS[name]).with_overrides(**overrides)


# ------------------------------------------------------------------------------------------ runs


@dataclass
class DataConfig:
    """Which data to train and evaluate on."""

    dataset: str = "h36m"
    """``h36m``, ``3dhp``, or the name of a dataset written by ``posediffusion prepare mocap``."""
    data_dir: str = "data"
    """Folder with the dataset files (``data_3d_<dataset>.npz`` ... or ``data_*_3dhp.npz``)."""
    keypoints: str = "gt"
    """2D source for Human3.6M-layout datasets: reads ``data_2d_<dataset>_<keypoints>.npz``."""
    subjects_train: list[str] | None = None
    """Training subjects; ``None``: S1,S5,S6,S7,S8 (Human3.6M layout) or all (3DHP)."""
    subjects_test: list[str] | None = None
    """Test subjects; ``None``: S9,S11 (Human3.6M layout) or TS1-TS6 (3DHP)."""
    actions: list[str] | None = None
    """Restrict to these actions (takes or merged names); ``None`` = all."""
    cameras: str | None = None
    """Camera JSON for Human3.6M-layout datasets; ``None`` = the bundled Human3.6M calibration."""
    stride: int | None = None
    """Training window stride in frames; ``None`` = the model's window length (non-overlapping)."""
    flip: bool = True
    """Left/right flip augmentation of training windows (probability 0.5)."""
    val_fraction: float = 0.1
    """Fraction of training frames carved off (whole takes, all cameras) for validation; 0 = none."""
    val_seed: int | None = None
    """Seed of the validation split (which takes are held out); ``None`` = the run's ``seed``. Fix it to
    compare runs of different seeds on the same held-out takes."""
    max_frames_per_sequence: int | None = None
    """Use only the first N frames of every sequence (quick CPU runs)."""
    camera_augmentation: bool = False
    """Virtual cameras per training window, for mocap-derived datasets: every epoch each training window is
    re-projected from the take's world 3D into a newly drawn camera (any azimuth, -10..45 deg elevation,
    2-10 m, focal 0.6-2.5 x image width, landscape or portrait), each take once instead of once per camera
    (data/augment.py, docs/training.md). Needs 3D with camera extrinsics (Human3.6M layout); validation
    and test windows are never augmented."""
    augment_noise: bool = True
    """With camera_augmentation: detector-like 2D noise (prepare mocap's model, scaled to the subject's size
    in the virtual image) on the re-projected 2D."""

    def split_seed(self, run_seed: int) -> int:
        """The seed of the validation split: ``val_seed``, or else the run's seed."""
        return run_seed if self.val_seed is None else self.val_seed

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"DataConfig: val_fraction must be in [0, 1), got {self.val_fraction}")
        seed = self.val_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"DataConfig: val_seed must be a non-negative integer or None, got {seed!r}")
        if self.camera_augmentation and self.is_3dhp:
            raise ValueError("DataConfig: camera_augmentation needs world-frame 3D (Human3.6M-layout "
                             "datasets such as prepare mocap's); 3dhp has only camera-frame 3D")
        for name in ("stride", "max_frames_per_sequence"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"DataConfig: {name} must be a positive integer, got {value!r}")
        for name in ("subjects_train", "subjects_test", "actions"):
            if getattr(self, name) is not None and not getattr(self, name):
                raise ValueError(f"DataConfig: {name} is an empty list (leave it unset for the default)")

    @property
    def is_3dhp(self) -> bool:
        return self.dataset == "3dhp"

    def with_default_subjects(self) -> DataConfig:
        """Copy with unset Human3.6M-layout subjects filled in (the seed's -str S1,... / -ste S9,S11).

        3DHP keeps ``None``: its loader takes every training sequence and TS1-TS6 for testing.
        """
        if self.is_3dhp:
            return self
        return dataclasses.replace(self, subjects_train=self.subjects_train or list(H36M_TRAIN_SUBJECTS),
                                   subjects_test=self.subjects_test or list(H36M_TEST_SUBJECTS))


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder and in checkpoints."""

    preset: str = "small"
    """Model preset (``config.PRESETS``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of ModelConfig/DiffusionConfig fields, e.g. ``{frames: 27, graph: false}``."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which data to train on (the ``data:`` section of the YAML file)."""
    checkpoint: str = "checkpoint/run"
    """Run folder: ``last/`` and ``best/`` checkpoints, ``config.yaml``, ``log.csv``, ``steps.csv``."""
    epochs: int = 100
    """Passes over the training windows."""
    batch_size: int | None = None
    """Windows per batch (per process under DDP); ``None`` = about 972 frames (the paper's 4 x 243)."""
    lr: float | None = None
    """AdamW peak learning rate; ``None`` = the preset's recipe (paper: 6e-5, 7e-5 for 3dhp; small 4e-4)."""
    lr_schedule: str | None = None
    """``exponential`` (multiply by lr_decay after every epoch, the seed's) or ``cosine`` (cosine from lr
    to min_lr_ratio x lr over the run: max_steps, budget_min or epochs, whichever ends first); ``None`` =
    the preset's recipe (paper: exponential, CPU presets: cosine)."""
    lr_decay: float | None = None
    """Per-epoch multiplicative LR decay of the exponential schedule; ``None`` = 0.993 (0.995 for 3dhp)."""
    warmup_steps: int | None = None
    """Linear learning-rate warm-up over the first N steps; ``None`` = the preset's recipe."""
    min_lr_ratio: float = 0.05
    """End of the cosine schedule as a fraction of lr."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Max global gradient norm; 0 = no clipping."""
    joint_dropout: float = 0.0
    """Joint dropout (needs a model with ``joint_mask: true``): the probability that a training window has
    1-3 limb-end joints missing in all its frames, and, independently, that it has one short gap of one
    joint (``model/joint_dropout.py``); the loss still scores every joint. 0 = off."""
    ema_decay: float | None = None
    """EMA of the weights per step; ``None`` = 0.999; 0 = off. Validation, selection and evaluation use the
    EMA weights when present."""
    amp: str = "auto"
    """Autocast: ``auto`` (bf16 on CUDA, off on CPU), ``none``, ``bf16``, ``fp16`` (with a grad scaler)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``cuda:0,1`` (under torchrun, local rank r: the r-th)."""
    seed: int = 0
    """Random seed: initial weights, data order, augmentation, validation split and noise."""
    resume: bool = False
    """Continue from ``<checkpoint>/last`` exactly (same data order, RNG and optimizer state)."""
    overwrite: bool = False
    """Allow starting a new run in a folder that already holds one."""
    save_every_steps: int = 0
    """Also write ``last`` every N optimisation steps (mid-epoch); 0 = only at epoch ends."""
    max_steps: int | None = None
    """Stop (and checkpoint) after this many optimisation steps in total."""
    budget_min: float | None = None
    """Stop (and checkpoint) after this many minutes of ``budget_clock`` time in this invocation."""
    budget_clock: str = "wall"
    """Clock of ``budget_min``: "wall" (elapsed time) or "cpu" (this process's CPU time, which other jobs
    on a shared machine cannot shrink: equal budgets for benchmark variants)."""
    snapshot_minutes: list[float] | None = None
    """Also write the model (no optimizer state) to ``<checkpoint>/snapshots/<M>min/`` when M minutes of
    ``budget_clock`` time have passed in this invocation, e.g. ``[5, 15]`` (learning-curve points)."""
    val_every_steps: int = 0
    """Also score the selection split (and write ``best`` when it improves) every N optimisation steps;
    0 = at epoch ends only. Either way a run that stops on ``max_steps`` or ``budget_min`` is scored once
    more at its last step, so every run ends with a selected ``best`` checkpoint."""
    val_hypotheses: int = 1
    """Hypotheses H used for the per-epoch validation score (P-Agg MPJPE)."""
    val_steps: int = 2
    """DDIM steps K used for the validation score."""
    val_max_windows: int = 128
    """At most this many (evenly spaced) windows are scored per validation."""
    select_on_test: bool = False
    """Choose ``best`` on the TEST split instead of validation (labelled in metadata and reports)."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process)."""
    log_every_steps: int = 10
    """Write a row to ``steps.csv`` every N steps."""
    progress_bar: bool = True
    """tqdm bars (only on a TTY, rank 0)."""
    tensorboard: bool = True
    """TensorBoard event files in the run folder when ``tensorboard`` is installed."""

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            self.data = build_config(DataConfig, self.data, "data")
        if self.amp not in AMP_MODES:
            raise ValueError(f"TrainConfig: amp must be one of {AMP_MODES}, got {self.amp!r}")
        for name in ("epochs", "val_hypotheses", "val_steps", "val_max_windows", "log_every_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        for name in ("batch_size", "max_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        if min(self.save_every_steps, self.num_workers, self.val_every_steps) < 0:
            raise ValueError("TrainConfig: save_every_steps, val_every_steps, num_workers must be >= 0")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig: ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_schedule is not None and self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainConfig: lr_schedule must be one of {LR_SCHEDULES}, "
                             f"got {self.lr_schedule!r}")
        if (self.warmup_steps is not None and self.warmup_steps < 0) or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("TrainConfig: warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")
        if self.budget_clock not in BUDGET_CLOCKS:
            raise ValueError(f"TrainConfig: budget_clock must be 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.budget_min is not None and self.budget_min <= 0:
            raise ValueError(f"TrainConfig: budget_min must be > 0, got {self.budget_min}")
        if self.snapshot_minutes is not None and not all(m > 0 for m in self.snapshot_minutes):
            raise ValueError(f"TrainConfig: snapshot_minutes must all be > 0, got {self.snapshot_minutes}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr}")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ValueError(f"TrainConfig: lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0.0 <= self.joint_dropout <= 1.0:
            raise ValueError(f"TrainConfig: joint_dropout must be in [0, 1], got {self.joint_dropout}")
        if not (self.grad_clip >= 0 and self.weight_decay >= 0):
            raise ValueError(f"TrainConfig: grad_clip and weight_decay must be >= 0, got {self.grad_clip} "
                             f"and {self.weight_decay}")
        _check_seed(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a nested dict (as in the YAML file); unknown keys raise ``ValueError``."""
        return build_config(cls, values, source)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    def resolved(self) -> TrainConfig:
        """Copy with every ``None`` default that depends on the dataset, model or preset filled in."""
        model_config = preset(self.preset, **self.model)  # validates preset and overrides
        if self.joint_dropout > 0 and not model_config.model.joint_mask:
            raise ValueError("TrainConfig: joint_dropout > 0 needs a model with a missing-joint input "
                             "(model: {joint_mask: true}, or --model joint_mask=true)")
        frames = model_config.model.frames
        published_lr, published_decay = PUBLISHED_LR["3dhp" if self.data.is_3dhp else "h36m"]
        recipe = {"lr": published_lr, "lr_decay": published_decay, **PRESET_RECIPES[self.preset]}
        data = dataclasses.replace(self.data.with_default_subjects(), stride=self.data.stride or frames)
        filled = {name: recipe[name] for name in ("lr", "lr_decay", "lr_schedule", "warmup_steps")
                  if getattr(self, name) is None}
        return dataclasses.replace(
            self, data=data, **filled,
            ema_decay=DEFAULT_EMA_DECAY if self.ema_decay is None else self.ema_decay,
            batch_size=self.batch_size or max(1, round(PAPER_FRAMES_PER_BATCH / frames)),
        )


@dataclass
class EvalConfig:
    """Settings of one evaluation (every field is written into the report)."""

    checkpoint: str
    """A checkpoint folder, or a run folder holding ``best/`` / ``last/``."""
    checkpoint_name: str | None = None
    """Sub-folder of ``checkpoint`` to use (``best``, ``last``); ``None``: best if present, else last."""
    hypotheses: int = 20
    """H, hypotheses per window (the paper: 20)."""
    steps: int = 10
    """K, DDIM steps (the paper: 10); every step's estimate is scored."""
    eta: float | None = None
    """DDIM eta; ``None`` = the checkpoint's diffusion config."""
    independent_hypotheses: bool = False
    """Draw every hypothesis's noise independently, even for a checkpoint whose diffusion config samples
    antithetic pairs (how every checkpoint sampled before 2026-12-01)."""
    flip: bool = True
    """Flip test-time augmentation."""
    stride: int | None = None
    """Window stride in frames; ``None`` = the window length (the published protocol)."""
    aggregations: tuple[str, ...] = AGGREGATIONS
    """Aggregations to score: p-agg, j-agg, and the ORACLES j-best, p-best (they peek at the ground truth)."""
    root_sources: tuple[str, ...] = ("estimated",)
    """Root sources for J-Agg; ``ground_truth`` peeks at the GT trajectory (labelled "GT root")."""
    p2: bool = False
    """Also report P-MPJPE (protocol 2)."""
    weights: str = "auto"
    """``auto`` (EMA when the checkpoint has it), ``ema`` or ``raw``."""
    data: dict[str, Any] = field(default_factory=dict)
    """Overrides of the checkpoint's DataConfig (dataset, data_dir, keypoints, subjects_test, actions,
    max_frames_per_sequence, ...)."""
    split: str = "test"
    """Sequences to score: "test" (the test subjects) or "validation" (the takes of the training subjects
    that the checkpoint's run held out for validation: its ``val_fraction`` and ``seed``; for selection
    without the test split)."""
    camera_ids: tuple[str, ...] | None = None
    """Only sequences seen by these camera ids (``None`` = all)."""
    max_sequences: int | None = None
    """Only the first N test sequences (quick CPU checks; the report says so)."""
    batch_size: int = 64
    """Windows per sampler call."""
    seed: int = 0
    """Random seed of the sampler's noise."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

    def __post_init__(self) -> None:
        self.aggregations, self.root_sources = tuple(self.aggregations), tuple(self.root_sources)
        if self.camera_ids is not None:
            self.camera_ids = tuple(self.camera_ids)
        bad = [a for a in self.aggregations if a not in AGGREGATIONS]
        bad += [r for r in self.root_sources if r not in ROOT_SOURCES]
        if bad:
            raise ValueError(f"unknown aggregation/root source {bad}; aggregations {AGGREGATIONS}, "
                             f"root sources {ROOT_SOURCES}")
        if min(self.hypotheses, self.steps, self.batch_size) < 1:
            raise ValueError("hypotheses, steps and batch_size must be >= 1")
        if self.weights not in WEIGHT_CHOICES:
            raise ValueError(f"weights must be auto, ema or raw, got {self.weights!r}")
        if self.split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {self.split!r}")
        for name in ("stride", "max_sequences"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.eta is not None and not self.eta >= 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        build_config(DataConfig, self.data, "data")  # overrides of the checkpoint's: validated now, not late
        if not self.aggregations or self.camera_ids == ():
            raise ValueError("aggregations and camera_ids must not be empty lists")
        _check_seed(self)


def _check_seed(config: TrainConfig | EvalConfig) -> None:
    """A seed must fit the 64-bit generators (numpy and torch) it seeds."""
    if not 0 <= config.seed < 2**63:
        raise ValueError(f"{type(config).__name__}: seed must be in [0, 2**63), got {config.seed}")


#: TrainConfig fields a resumed run may change (budget, logging, machine); every other field must equal the
#: run's saved ``config.yaml``, or the continuation would not be the run it claims to be (a new seed even
#: changes the validation split).
RESUME_OVERRIDES = frozenset({
    "resume", "overwrite", "epochs", "max_steps", "budget_min", "budget_clock", "save_every_steps",
    "val_every_steps", "log_every_steps", "progress_bar", "tensorboard", "num_workers", "device",
})


def resume_differences(config: TrainConfig, saved: TrainConfig) -> tuple[list[str], list[str]]:
    """``(conflicts, overrides)``: fields (``data.x`` for data) where ``config`` differs from ``saved``."""
    new, old = config_to_dict(config), config_to_dict(saved)
    changed = [k for k in new if k != "data" and new[k] != old[k]]
    changed += [f"data.{k}" for k in new["data"] if new["data"][k] != old["data"][k]]
    return [k for k in changed if k not in RESUME_OVERRIDES], [k for k in changed if k in RESUME_OVERRIDES]


def load_yaml(path: str | Path) -> PoseDiffusionConfig:
    """Read a model config written by :func:`save_yaml` (unknown keys are an error naming the file)."""
    return load_config_yaml(PoseDiffusionConfig, path)


def save_yaml(config: PoseDiffusionConfig, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path`` atomically."""
    save_config_yaml(config, path)


def _check_bounds(obj: object, limits: dict[str, float]) -> None:
    for name, limit in limits.items():
        if getattr(obj, name) > limit:
            raise ValueError(f"{type(obj).__name__}: {name} must be <= {limit}, got {getattr(obj, name)!r}")


def _check_positive(obj: object, names: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless every named numeric field of ``obj`` is a number > 0."""
    types = {f.name: f.type for f in dataclasses.fields(obj)}
    for name in names:
        value = getattr(obj, name)
        allowed = int if types[name] in (int, "int") else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed) or value <= 0:
            kind = "integer" if allowed is int else "number"
            raise ValueError(f"{type(obj).__name__}: {name} must be a positive {kind}, got {value!r}")
