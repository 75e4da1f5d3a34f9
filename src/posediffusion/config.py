"""Model and diffusion configuration: dataclasses with validation, named presets, YAML in/out.

A :class:`PoseDiffusionConfig` holds one :class:`ModelConfig` and one :class:`DiffusionConfig`. Presets are
named override sets (``PRESETS``): ``paper`` is the published size; ``base``, ``small`` and ``tiny`` are
sized for the 2-core CPUs measured in ``docs/model.md``. Unknown keys are an error everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posediffusion.io_utils import write_text_atomic

ATTENTION_KINDS = ("sdpa", "math")
PROMPT_INITS = ("text", "random")


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
    """Anatomical graph diffuser: learnable skeletal graph convolution beside spatial attention."""
    graph_hops: int = 1
    """Skeleton edges of the initial graph connect joints up to this many bones apart (1 = bones)."""
    semantic_prompts: bool = True
    """Body-part prompt tokens: joints receive their part's token and cross-attend to all 7 prompts."""
    prompt_init: str = "text"
    """Initial prompt tokens: "text" (stored sentence embeddings of part descriptions) or "random"."""
    motion_prompts: bool = True
    """Per-frame prompt from 2D velocity/acceleration/part speed, added to the frame conditioning."""
    energy_regulator: bool = True
    """Temporal energy regulator: per-frame gains for the temporal blocks and the sampler."""
    energy_sigma: float = 1.0
    """Standard deviation (frames) of the Gaussian that smooths the motion energy; 0 = no smoothing."""

    def __post_init__(self) -> None:
        _check_positive(self, ("num_joints", "frames", "width", "depth", "heads", "mlp_ratio", "graph_hops"))
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
        for name in ("graph", "semantic_prompts", "motion_prompts", "energy_regulator"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig: {name} must be true or false, got {getattr(self, name)!r}")


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
    smoothing: float = 0.5
    """Sampler's per-frame temporal smoothing strength; used only with the energy regulator."""

    def __post_init__(self) -> None:
        _check_positive(self, ("num_steps", "s", "scale", "clamp"))
        if self.velocity_weight < 0:
            raise ValueError(f"DiffusionConfig: velocity_weight must be >= 0, got {self.velocity_weight}")
        if self.eta < 0:
            raise ValueError(f"DiffusionConfig: eta must be >= 0, got {self.eta}")
        if not 0.0 <= self.smoothing <= 1.0:
            raise ValueError(f"DiffusionConfig: smoothing must be in [0, 1], got {self.smoothing}")


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
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping with 'model' and 'diffusion', got {type(data)}")
        unknown = set(data) - {"model", "diffusion"}
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {sorted(unknown)}; expected 'model', 'diffusion'")
        model = _build(ModelConfig, data.get("model") or {}, f"{source}: model")
        diffusion = _build(DiffusionConfig, data.get("diffusion") or {}, f"{source}: diffusion")
        return cls(model=model, diffusion=diffusion)

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


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"width": 512, "depth": 8, "heads": 8, "frames": 243, "attention": "sdpa"},
    "base": {"width": 128, "depth": 4, "heads": 8, "frames": 81, "attention": "sdpa"},
    "small": {"width": 64, "depth": 4, "heads": 8, "frames": 27, "attention": "math"},
    "tiny": {"width": 32, "depth": 2, "heads": 4, "frames": 9, "attention": "sdpa"},
}
"""Named presets: flat overrides of ModelConfig/DiffusionConfig defaults. The attention kernel of each is
the faster one measured on the 2-core CPU (docs/model.md)."""


def preset(name: str, **overrides: Any) -> PoseDiffusionConfig:
    """The config of preset ``name`` with flat ``overrides`` (any ModelConfig/DiffusionConfig field)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PoseDiffusionConfig().with_overrides(**PRESETS[name]).with_overrides(**overrides)


def load_yaml(path: str | Path) -> PoseDiffusionConfig:
    """Read a config written by :func:`save_yaml` (unknown keys are an error naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    return PoseDiffusionConfig.from_dict(data or {}, source=str(path))


def save_yaml(config: PoseDiffusionConfig, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path`` atomically."""
    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def _build(cls: type, values: dict[str, Any], source: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``; unknown keys raise ``ValueError`` naming ``source``."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}; valid: {sorted(names)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from err


def _check_positive(obj: object, names: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless every named numeric field of ``obj`` is a number > 0."""
    types = {f.name: f.type for f in dataclasses.fields(obj)}
    for name in names:
        value = getattr(obj, name)
        allowed = int if types[name] in (int, "int") else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed) or value <= 0:
            kind = "integer" if allowed is int else "number"
            raise ValueError(f"{type(obj).__name__}: {name} must be a positive {kind}, got {value!r}")
