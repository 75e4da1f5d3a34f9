"""Shared test data and models: one home for what several test files need.

``tests/conftest.py`` turns these into fixtures (``tiny_model``, ``tiny_checkpoint``,
``synthetic_dataset``); tests that need a variant call the functions directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: This project's development data beside the checkout (not shipped); tests that need it skip without it.
SHARED_DATA = REPO / ".." / "shared" / "data"
CMU_MOCAP = SHARED_DATA / "mocap" / "cmu_h36m17_50hz.npz"
SHARED_CAMERAS = SHARED_DATA / "cameras" / "h36m_cameras.json"
BUNDLED_CAMERAS = REPO / "src" / "posediffusion" / "assets" / "h36m_cameras.json"

#: A standing Human3.6M-17 skeleton, millimetres, world frame with Z up, feet near z = 0, facing +y.
TEMPLATE_MM = np.array([
    [0, 0, 900], [-100, 0, 900], [-100, 0, 480], [-100, 0, 80], [100, 0, 900], [100, 0, 480], [100, 0, 80],
    [0, 0, 1130], [0, 0, 1380], [0, 0, 1480], [0, 0, 1600], [170, 0, 1350], [170, 0, 1080], [170, 0, 830],
    [-170, 0, 1350], [-170, 0, 1080], [-170, 0, 830]], dtype=np.float64)


def synthetic_motion(frames: int, speed_mm: float, freq_hz: float, amplitude_mm: float) -> np.ndarray:
    """(F, 17, 3) float32 mm, Z up, 50 fps: the template gliding along x, swinging arms and legs."""
    t = np.arange(frames)[:, None] / 50.0
    pose = np.repeat(TEMPLATE_MM[None], frames, axis=0)
    swing = amplitude_mm * np.sin(2 * np.pi * freq_hz * t)
    pose[:, [13, 6], 1] += swing
    pose[:, [16, 3], 1] -= swing
    pose[:, :, 0] += speed_mm * t
    return pose.astype(np.float32)


def synthetic_motions(motions: int = 10, frames: int = 48) -> dict[str, np.ndarray]:
    """Motion name ("000_01_cc", ...) -> (F, 17, 3) mm; motion i is faster and swings wider than i - 1."""
    return {f"{i:03d}_01_cc": synthetic_motion(frames, 300 + 100 * i, 0.5 + 0.2 * i, 100 + 20 * i)
            for i in range(motions)}


def write_synthetic_mocap(path: Path, motions: int = 10, frames: int = 48) -> Path:
    """A mocap npz in the layout ``prepare mocap`` reads (motion -> (F, 17, 3) mm, world, Z up)."""
    np.savez(path, **synthetic_motions(motions, frames))
    return path


def prepare_dataset(mocap: Path, out: Path, name: str, motions: str | None = None) -> Path:
    """``posediffusion prepare mocap`` (through the CLI) of ``mocap`` into ``out`` as dataset ``name``."""
    from posediffusion.cli import main

    command = ["prepare", "mocap", "--input", str(mocap), "--out", str(out), "--name", name]
    assert main(command + (["--motions", motions] if motions else [])) == 0
    return out


def make_tiny_model(**overrides):
    """A fresh ``tiny`` PoseDiffusion with the weights of ``torch.manual_seed(0)`` (train mode)."""
    import torch

    from posediffusion.model.pose_diffusion import PoseDiffusion

    torch.manual_seed(0)
    return PoseDiffusion.from_preset("tiny", **overrides)
