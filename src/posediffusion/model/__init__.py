"""The PoseDiffusion+ network: denoiser, anatomical graph, motion prompts, energy regulator, public model,
and the joint dropout that trains its missing-joint input.

Names are imported lazily so ``import posediffusion.model`` stays cheap::

    from posediffusion.model import PoseDiffusion, Denoiser
"""

from __future__ import annotations

_LAZY = {
    "PoseDiffusion": "posediffusion.model.pose_diffusion",
    "Denoiser": "posediffusion.model.denoiser",
    "AnatomicalGraph": "posediffusion.model.graph",
    "SemanticPrompts": "posediffusion.model.prompts",
    "MotionPrompts": "posediffusion.model.prompts",
    "TemporalEnergyRegulator": "posediffusion.model.energy",
    "joint_dropout_mask": "posediffusion.model.joint_dropout",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'posediffusion.model' has no attribute {name!r}")
