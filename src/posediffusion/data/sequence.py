"""The one in-memory record every loader produces and every consumer (windows, evaluation, lifting) reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sequence:
    """One continuous clip seen by one camera.

    Shapes: F frames, J = 17 joints, Human3.6M joint order (3DHP loaders reorder).

    Attributes:
        keypoints_2d: (F, J, 2) float32, normalised screen coordinates (``camera.normalize_screen``).
        pose_3d: (F, J, 3) float32, metres, camera frame, root-relative (joint 0 at the origin);
            ``None`` for in-the-wild input without ground truth.
        trajectory: (F, 3) float32, metres, camera-frame root position (used for ground-truth-root J-Agg
            and rendering); ``None`` if unknown.
        camera: camera dict (``focal_length``, ``center``, distortion, ``res_w``, ``res_h``), or ``None``.
        valid: (F,) bool, frames to score (3DHP test ``valid``); all True by default.
        subject, action, camera_id: labels; ``action`` is the take name ("Walking 1"),
            ``action_group`` the merged name used for per-action reporting ("Walking").
        fps: frame rate.
        extra: free-form metadata (e.g. 3DHP activity per frame).
    """

    keypoints_2d: np.ndarray
    pose_3d: np.ndarray | None = None
    trajectory: np.ndarray | None = None
    camera: dict[str, Any] | None = None
    valid: np.ndarray | None = None
    subject: str = ""
    action: str = ""
    action_group: str = ""
    camera_id: str = ""
    fps: float = 50.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.keypoints_2d)
        if self.keypoints_2d.ndim != 3 or self.keypoints_2d.shape[-1] != 2:
            raise ValueError(f"{self.name}: keypoints_2d must be (F, J, 2), got {self.keypoints_2d.shape}")
        if n == 0:
            raise ValueError(f"{self.name}: empty sequence")
        for key in ("pose_3d", "trajectory", "valid"):
            arr = getattr(self, key)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{self.name}: {key} has {len(arr)} frames, keypoints_2d has {n}")
        if self.valid is None:
            self.valid = np.ones(n, dtype=bool)
        if not self.action_group:
            self.action_group = self.action

    @property
    def name(self) -> str:
        return "/".join(x for x in (self.subject, self.action, self.camera_id) if x) or "<sequence>"

    @property
    def num_frames(self) -> int:
        return len(self.keypoints_2d)
