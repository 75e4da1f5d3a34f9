"""PoseDiffusion+: diffusion lifting of 2D keypoint sequences to 3D human pose.

Public API (imported lazily, so ``import posediffusion`` does no work)::

    from posediffusion import PoseDiffusion
    model = PoseDiffusion.from_preset("small")
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "PoseDiffusion": ("posediffusion.model.pose_diffusion", "PoseDiffusion"),
    "H36M_17": ("posediffusion.skeleton", "H36M_17"),
    "MPI_INF_3DHP_17": ("posediffusion.skeleton", "MPI_INF_3DHP_17"),
}

__all__ = ["PoseDiffusion", "H36M_17", "MPI_INF_3DHP_17", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'posediffusion' has no attribute {name!r}")
