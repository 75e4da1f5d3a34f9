"""Camera geometry: world <-> camera, projection with the Human3.6M distortion model, screen normalisation.

Pure functions that accept numpy arrays or torch tensors and return the same kind, on the same device and
in the same dtype. Conventions (``assets/h36m_cameras.json``, ``docs/formats.md``):

* ``X_cam = R^T (X_world - T)``; ``R`` is 3x3, ``T`` in metres.
* projection: ``x = X/Z, y = Y/Z, r2 = x^2 + y^2``, ``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``,
  ``tan = p1 y + p2 x``, ``u = fx (x (radial + tan) + p2 r2) + cx``,
  ``v = fy (y (radial + tan) + p1 r2) + cy``.
* screen normalisation (VideoPose3D): ``u / w * 2 - 1``, ``v / w * 2 - h / w`` (one factor for both axes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

Array = Any  # numpy.ndarray | torch.Tensor


def _as_like(value: Any, ref: Array) -> Array:
    """``value`` as an array of ``ref``'s kind, dtype and device."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(np.asarray(value), dtype=ref.dtype, device=ref.device)
    return np.asarray(value, dtype=ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float64)


def world_to_camera(points_world: Array, R: Any, T: Any) -> Array:
    """(..., 3) world points -> (..., 3) camera-frame points: ``X_cam = R^T (X_world - T)``.

    Row vectors: ``(X - T) @ R`` equals ``(R^T (X - T)^T)^T``.
    """
    R, T = _as_like(R, points_world), _as_like(T, points_world)
    return (points_world - T) @ R


def camera_to_world(points_cam: Array, R: Any, T: Any) -> Array:
    """Inverse of :func:`world_to_camera`: ``X_world = R X_cam + T``."""
    R, T = _as_like(R, points_cam), _as_like(T, points_cam)
    return points_cam @ R.T + T


def project_to_pixels(points_cam: Array, camera: dict) -> Array:
    """Project (..., 3) camera-frame points (Z > 0) to (..., 2) pixels with the camera's distortion.

    Args:
        points_cam: (..., 3) points in the camera frame, any unit (only ratios X/Z, Y/Z matter).
        camera: a camera entry as in ``h36m_cameras.json``: ``focal_length`` (2,), ``center`` (2,),
            ``radial_distortion`` (3,), ``tangential_distortion`` (2,). Missing distortion keys mean zero.
    """
    f = _as_like(camera["focal_length"], points_cam)
    c = _as_like(camera["center"], points_cam)
    k = _as_like(camera.get("radial_distortion", [0.0, 0.0, 0.0]), points_cam)
    p = _as_like(camera.get("tangential_distortion", [0.0, 0.0]), points_cam)
    z = points_cam[..., 2:3]
    xy = points_cam[..., :2] / z  # (..., 2)
    x, y = xy[..., 0:1], xy[..., 1:2]
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[0] * y + p[1] * x
    u = f[0] * (x * (radial + tan) + p[1] * r2) + c[0]
    v = f[1] * (y * (radial + tan) + p[0] * r2) + c[1]
    if isinstance(points_cam, torch.Tensor):
        return torch.cat([u, v], dim=-1)
    return np.concatenate([u, v], axis=-1)


def project_pinhole(points_cam: Array, focal: Any, center: Any) -> Array:
    """(..., 3) -> (..., 2) pixels with a distortion-free pinhole camera (focal (2,) px, center (2,) px)."""
    f, c = _as_like(focal, points_cam), _as_like(center, points_cam)
    return points_cam[..., :2] / points_cam[..., 2:3] * f + c


def normalize_screen(pixels: Array, width: float, height: float) -> Array:
    """(..., 2) pixels -> normalised screen coordinates: x in [-1, 1], y scaled by the same factor."""
    offset = _as_like([1.0, height / width], pixels)
    return pixels / width * 2 - offset


def image_coordinates(normalised: Array, width: float, height: float) -> Array:
    """Inverse of :func:`normalize_screen`: normalised coordinates -> pixels."""
    offset = _as_like([1.0, height / width], normalised)
    return (normalised + offset) * width / 2


def load_cameras(path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Read ``h36m_cameras.json`` -> subject -> camera id -> camera dict with numpy arrays.

    Each camera dict has ``R`` (3, 3), ``T`` (3,), ``focal_length`` (2,), ``center`` (2,),
    ``radial_distortion`` (3,), ``tangential_distortion`` (2,) as float64 arrays, ``res_w``/``res_h`` ints
    and ``id``. Raises ``ValueError`` naming the file on a malformed entry.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read camera JSON ({err})") from err
    if "subjects" not in raw:
        raise ValueError(f"{path}: no 'subjects' key; expected the h36m_cameras.json layout")
    shapes = {"R": (3, 3), "T": (3,), "focal_length": (2,), "center": (2,), "radial_distortion": (3,),
              "tangential_distortion": (2,)}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for subject, cams in raw["subjects"].items():
        out[subject] = {}
        for cam_id, cam in cams.items():
            entry: dict[str, Any] = {"id": cam_id}
            for key, shape in shapes.items():
                arr = np.asarray(cam.get(key), dtype=np.float64)
                if arr.shape != shape or not np.isfinite(arr).all():
                    raise ValueError(f"{path}: {subject}/{cam_id}: '{key}' must be finite with shape {shape}")
                entry[key] = arr
            entry["res_w"], entry["res_h"] = int(cam["res_w"]), int(cam["res_h"])
            out[subject][cam_id] = entry
    return out

