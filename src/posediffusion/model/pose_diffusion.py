"""``PoseDiffusion``: the public model - denoiser + noise schedule + config, with training loss and sampling.

The model takes windows of exactly ``config.model.frames`` frames; longer sequences are cut into windows,
sampled and merged back by ``posediffusion.inference.sample_sequences`` (geometry in ``data.windows``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from posediffusion import diffusion
from posediffusion.config import PoseDiffusionConfig, preset
from posediffusion.model.denoiser import Denoiser
from posediffusion.model.joint_dropout import joint_dropout_mask
from posediffusion.skeleton import H36M_17, flip_pose, root_relative


class PoseDiffusion(nn.Module):
    """PoseDiffusion+ lifter: (B, T, 17, 2) normalised 2D windows -> (B, H, T, 17, 3) metres, root-relative.

    Attributes:
        config: the :class:`~posediffusion.config.PoseDiffusionConfig` it was built from.
        denoiser: the x0-predicting :class:`~posediffusion.model.denoiser.Denoiser`.
        schedule: the cosine noise schedule (a submodule, so ``.to(device)`` moves it).
    """

    def __init__(self, config: PoseDiffusionConfig) -> None:
        super().__init__()
        self.config = config
        self.denoiser = Denoiser(config.model, H36M_17)
        self.schedule = diffusion.CosineSchedule(num_steps=config.diffusion.num_steps, s=config.diffusion.s)
        self.register_buffer(
            "flip_permutation", torch.from_numpy(H36M_17.flip_permutation()), persistent=False
        )  # (J,)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> PoseDiffusion:
        """Build preset ``name`` ("paper", "base", "small", "tiny") with overrides of any config field."""
        return cls(preset(name, **overrides))

    @classmethod
    def from_config(cls, config: PoseDiffusionConfig) -> PoseDiffusion:
        """Build from a config (e.g. one stored in a checkpoint)."""
        return cls(config)

    def training_loss(self, x2d: Tensor, x3d: Tensor, generator: torch.Generator | None = None,
                      joint_dropout: float = 0.0, visible: Tensor | None = None) -> Tensor:
        """Scalar x0-prediction loss (MPJPE in metres [+ velocity term]) at one random timestep per window.

        Args:
            x2d: (B, T, 17, 2) normalised screen coordinates, T == config.model.frames.
            x3d: (B, T, 17, 3) ground truth, metres, root-relative.
            generator: makes the joint dropout, timesteps and noise deterministic (drawn in that order).
            joint_dropout: rate p of ``model.joint_dropout.joint_dropout_mask``: hides joints from the
                input (needs ``config.model.joint_mask``); the loss still scores every joint, so the
                network learns to infer the hidden ones. 0 draws nothing.
            visible: (B, T, 17) bool, joints missing from the data itself (``joint_mask`` models only);
                combined with the dropout. ``None``: all seen.
        """
        self._check_input(x2d)
        if x3d.shape != (*x2d.shape[:-1], 3):
            raise ValueError(f"x3d must be {(*x2d.shape[:-1], 3)} to match x2d, got {tuple(x3d.shape)}")
        if not torch.isfinite(x3d).all():
            raise ValueError("x3d contains NaN or infinite values")
        if joint_dropout > 0:
            if not self.config.model.joint_mask:
                raise ValueError("joint_dropout needs a model with a missing-joint input "
                                 "(ModelConfig.joint_mask true)")
            b, t, j, _ = x2d.shape
            dropped = joint_dropout_mask(b, t, j, joint_dropout, generator, device=x2d.device)  # (B, T, J)
            visible = dropped if visible is None else dropped & visible.to(dropped.device, torch.bool)
        d = self.config.diffusion
        cond = self.denoiser.encode_condition(x2d, visible)
        smoothing = self.smoothing() if d.smoothing_in_loss else 0.0
        return diffusion.training_loss(
            self.denoiser,
            x3d,
            cond,
            self.schedule,
            scale=d.scale,
            clamp=d.clamp,
            velocity_weight=d.velocity_weight,
            smoothing=smoothing,
            frame_gain=self.denoiser.sampler_gain(cond) if smoothing > 0 else None,  # with gradient
            timestep_sampling=d.timestep_sampling,
            generator=generator,
        )

    @torch.no_grad()
    def sample(
        self,
        x2d: Tensor,
        num_hypotheses: int = 1,
        steps: int = 1,
        flip: bool = True,
        generator: torch.Generator | None = None,
        return_all_steps: bool = False,
        eta: float | None = None,
        visible: Tensor | None = None,
        antithetic: bool | None = None,
    ) -> Tensor:
        """Draw 3D hypotheses with DDIM.

        Args:
            x2d: (B, T, 17, 2) normalised screen coordinates, T == config.model.frames (window longer
                sequences with ``posediffusion.data.windows``).
            num_hypotheses: H >= 1, folded into the batch.
            steps: K >= 1 DDIM steps.
            flip: flip test-time augmentation (mirrored copy batched with the original).
            generator: makes the samples deterministic.
            return_all_steps: also return the x0 estimate of every step.
            eta: DDIM stochasticity; ``None`` = ``config.diffusion.eta``.
            visible: (B, T, 17) bool, False for joints missing from the input, which the network then
                infers (their x2d is never read); only for ``config.model.joint_mask`` models (else
                ``ValueError``). ``None``: all seen.
            antithetic: hypotheses' noise in antithetic pairs (``diffusion.ddim_sample``); ``None`` =
                ``config.diffusion.antithetic``.

        Returns:
            (B, H, T, 17, 3), or (K, B, H, T, 17, 3) with ``return_all_steps``; metres, root exactly 0.
        """
        self._check_input(x2d)
        if num_hypotheses < 1 or steps < 1:
            raise ValueError(f"num_hypotheses and steps must be >= 1, got {num_hypotheses} and {steps}")
        d = self.config.diffusion
        perm = self.flip_permutation
        windows = torch.cat([x2d, flip_pose(x2d, perm)]) if flip else x2d  # (2B | B, T, J, 2)
        visible = self.denoiser.visibility(x2d, visible)  # (B, T, J) bool; None: a model without the mask
        if visible is not None and flip:
            visible = torch.cat([visible, visible[..., perm]])  # (2B, T, J): the mirrored joints' flags
        cond = self.denoiser.encode_condition(windows, visible)
        gain = self.denoiser.sampler_gain(cond)  # (2B | B, T) or None
        out = diffusion.ddim_sample(
            self.denoiser,
            cond,
            (x2d.shape[0], x2d.shape[1], x2d.shape[2], 3),
            self.schedule,
            num_hypotheses=num_hypotheses,
            steps=steps,
            eta=d.eta if eta is None else eta,
            scale=d.scale,
            clamp=d.clamp,
            flip_permutation=perm if flip else None,
            smoothing=self.smoothing(),
            frame_gain=None if gain is None else gain[: x2d.shape[0]],  # the original windows' gain
            gain_in_eta=self.config.model.gains_in_network,
            generator=generator,
            return_all_steps=return_all_steps,
            antithetic=d.antithetic if antithetic is None else antithetic,
        )
        return root_relative(out)  # root exactly 0

    def frame_gains(self, x2d: Tensor, visible: Tensor | None = None) -> Tensor | None:
        """The energy regulator's per-frame gains (B, T) in (0, 1) for (B, T, 17, 2) windows (and their
        (B, T, 17) visibility, as :meth:`sample` takes it): what :meth:`sample` hands the sampler
        (``frame_gain``) for these windows and, with ``energy_uses="all"``, what scales the temporal blocks'
        modulation. ``None`` without the regulator."""
        self._check_input(x2d)
        if self.denoiser.energy is None:
            return None
        return self.denoiser.energy(x2d, self.denoiser.visibility(x2d, visible))[1]

    def smoothing(self) -> float:
        """Effective strength of the sampler's (and, with ``smoothing_in_loss``, the loss's) temporal
        smoothing: ``config.diffusion.smoothing``, or 0 for old-checkpoint configs (``smoothing_mode``
        "with_regulator") without the regulator."""
        d = self.config.diffusion
        if d.smoothing_mode == "with_regulator" and not self.config.model.energy_regulator:
            return 0.0
        return d.smoothing

    def no_weight_decay(self) -> set[str]:
        """Parameter names (as in ``named_parameters()``) to exclude from weight decay: the energy regulator's
        learnable map (``denoiser.energy.slope_raw``, ``denoiser.energy.offset``)."""
        return {f"denoiser.{name}" for name in self.denoiser.no_weight_decay()}

    def count_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_frame(self) -> float:
        """Analytic matmul FLOPs of one denoiser evaluation per frame (x2 per step with flip)."""
        return self.denoiser.flops_per_frame()

    def _check_input(self, x2d: Tensor) -> None:
        """Raise ``ValueError`` unless x2d is a finite (B, frames, 17, 2) float tensor."""
        cfg = self.config.model
        if not isinstance(x2d, Tensor) or not x2d.is_floating_point():
            raise ValueError(f"x2d must be a floating-point torch.Tensor, got {type(x2d).__name__}")
        if x2d.ndim != 4 or x2d.shape[2:] != (cfg.num_joints, 2) or x2d.shape[0] < 1:
            raise ValueError(f"x2d must be (B, T, {cfg.num_joints}, 2), got {tuple(x2d.shape)}")
        if x2d.shape[1] != cfg.frames:
            raise ValueError(
                f"x2d has {x2d.shape[1]} frames but this model takes exactly {cfg.frames}: cut sequences "
                "into windows with posediffusion.data.windows"
            )
        if not torch.isfinite(x2d).all():
            raise ValueError("x2d contains NaN or infinite values")
