"""Human3.6M loader for the VideoPose3D npz layout (also reads datasets written by ``prepare mocap``).

Files in ``data_dir`` (``docs/formats.md``):

* ``data_3d_<name>.npz``: ``positions_3d`` = subject -> action -> (F, 32 | 17, 3) metres, world frame.
* ``data_2d_<name>_<keypoints>.npz``: ``positions_2d`` = subject -> action -> list of one (F, 32 | 17, 2)
  pixel array per camera, in the camera JSON's ``camera_ids`` order; ``metadata`` (``num_joints``,
  ``keypoints_symmetry``, optional ``fps`` and ``camera_ids``).

32-joint arrays (the original Human3.6M skeleton, e.g. VideoPose3D's ``data_2d_h36m_gt.npz``), 2D or 3D,
are reduced to the 17 joints of ``skeleton.H36M_32_TO_17``.

Every (subject, action, camera) becomes one :class:`~posediffusion.data.sequence.Sequence`: 2D normalised
by that camera's image size, 3D rotated into the camera frame and made root-relative, the camera-frame root
kept as the trajectory.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.camera import load_cameras, normalize_screen, world_to_camera
from posediffusion.data.sequence import Sequence
from posediffusion.data.validation import check_array, select_names
from posediffusion.io_utils import npz_dict, read_npz
from posediffusion.skeleton import H36M_17, H36M_32_TO_17, root_relative

logger = logging.getLogger(__name__)

H36M_FPS = 50.0
#: Take names in the Human3.6M releases that differ from the 15 protocol action names.
ACTION_ALIASES = {
    "TakingPhoto": "Photo",
    "WalkingDog": "WalkDog",
    "WalkingTogether": "WalkTogether",
    "Purchase": "Purchases",
}
#: Coordinates beyond this many metres mean the file is not in metres (Human3.6M world is ~10 m wide).
_MAX_ABS_METRES = 100.0


def action_group(action: str) -> str:
    """Merged action name for per-action reporting: ``"Walking 1"`` -> ``"Walking"``, ``"TakingPhoto 1"``
    -> ``"Photo"``, ``"WalkingDog"`` -> ``"WalkDog"``; other names (e.g. mocap motions) pass through.

    Strips a trailing take number (``" 1"``, ``" 2"``) and applies :data:`ACTION_ALIASES` (Human3.6M's
    S1 names its takes ``TakingPhoto``/``WalkingDog`` where the other subjects say ``Photo``/``WalkDog``).
    """
    base = re.sub(r"\s+\d+$", "", action.strip())
    return ACTION_ALIASES.get(base, base)


def bundled_cameras_path() -> Path:
    """Path of the bundled Human3.6M calibration (``assets/h36m_cameras.json``, Apache-2.0 via mmpose)."""
    return Path(str(resources.files("posediffusion").joinpath("assets", "h36m_cameras.json")))


def _camera_order(path: Path) -> list[str] | None:
    """The JSON's top-level ``camera_ids`` (the 2D list order), or ``None`` if it has none."""
    ids = json.loads(path.read_text()).get("camera_ids")
    return [str(i) for i in ids] if ids is not None else None


def _metadata(npz: dict[str, Any], path: Path) -> dict[str, Any]:
    """The 2D file's ``metadata`` dict (empty if absent), checked against the Human3.6M 17/32 layouts."""
    if "metadata" not in npz:
        return {}
    meta = npz["metadata"]
    meta = meta.item() if meta.dtype == object and meta.ndim == 0 else meta
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'metadata' must be a dict, got {type(meta)}")
    num_joints = int(meta.get("num_joints", 17))
    if num_joints not in (17, 32):
        raise ValueError(f"{path}: metadata num_joints={num_joints}, expected 17 or 32 (Human3.6M layouts)")
    symmetry = meta.get("keypoints_symmetry")
    if symmetry is not None:
        # compare on the 17 kept joints: a 32-joint file also lists joints that are dropped
        kept = {j32: j17 for j17, j32 in enumerate(H36M_32_TO_17 if num_joints == 32 else range(17))}
        left, right = (sorted(kept[int(j)] for j in side if int(j) in kept) for side in symmetry)
        if (left, right) != (sorted(H36M_17.left), sorted(H36M_17.right)):
            raise ValueError(f"{path}: keypoints_symmetry {symmetry} is not the Human3.6M-17 layout (left "
                             f"{list(H36M_17.left)}, right {list(H36M_17.right)}); convert keypoints first")
    return meta


def _to_17(arr: np.ndarray) -> np.ndarray:
    """(F, 32 | 17, C) -> (F, 17, C): the 32-joint original skeleton keeps ``H36M_32_TO_17``."""
    return arr[:, list(H36M_32_TO_17)] if arr.shape[1] == 32 else arr


def _select_actions(actions: dict[str, Any], wanted: Iterable[str] | None) -> list[str]:
    """Takes whose name or merged group is in ``wanted`` (all if ``None``)."""
    if wanted is None:
        return list(actions)
    wanted = set(wanted)
    return [a for a in actions if a in wanted or action_group(a) in wanted]


def _camera_sequences(pose_world: np.ndarray, views_px: list, cams: list[dict[str, Any]], subject: str,
                      action: str, path_2d: Path, extra: dict[str, Any], fps: float) -> list[Sequence]:
    """One Sequence per camera of a (subject, action) pair; 2D/3D lengths trimmed to the shorter."""
    out = []
    for kp_px, cam in zip(views_px, cams, strict=True):
        where = f"{subject}/{action}/camera {cam['id']}"
        frames = min(len(kp_px), len(pose_world))
        if len(kp_px) != len(pose_world):
            logger.info("%s: %s: 2D has %d frames, 3D %d; trimmed to %d", path_2d, where, len(kp_px),
                        len(pose_world), frames)
        pose_cam = world_to_camera(pose_world[:frames], cam["R"], cam["T"])  # (F, J, 3) metres
        out.append(Sequence(
            keypoints_2d=normalize_screen(kp_px[:frames], cam["res_w"], cam["res_h"]).astype(np.float32),
            pose_3d=root_relative(pose_cam).astype(np.float32),
            trajectory=pose_cam[:, 0].astype(np.float32),
            camera=dict(cam),
            subject=subject,
            action=action,
            action_group=action_group(action),
            camera_id=str(cam["id"]),
            fps=fps,
            extra=dict(extra),
        ))
    return out


def _subject_cameras(cameras: dict, order: list[str] | None, subject: str, path: Path) -> list[dict]:
    """The subject's cameras in 2D-list order; a subject without cameras raises ``ValueError``."""
    if subject not in cameras:
        raise ValueError(f"{path}: no cameras for subject {subject!r} (has {sorted(cameras)})")
    by_id = cameras[subject]
    ids = order if order is not None else list(by_id)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{path}: subject {subject!r} lacks cameras {missing}")
    return [by_id[i] for i in ids]


def load_h36m(data_dir: str | Path, name: str = "h36m", keypoints: str = "gt",
              subjects: Iterable[str] | None = None, actions: Iterable[str] | None = None,
              cameras: str | Path | None = None, camera_ids: Iterable[str] | None = None) -> list[Sequence]:
    """Load a Human3.6M-layout dataset as one Sequence per (subject, action, camera).

    Args:
        data_dir: folder holding ``data_3d_<name>.npz`` and ``data_2d_<name>_<keypoints>.npz``.
        name: dataset name (``"h36m"``, or the name given to ``posediffusion prepare mocap``).
        keypoints: 2D source: ``"gt"``, ``"det"``, ``"cpn_ft_h36m_dbb"``, ...
        subjects: subjects to load (e.g. ``["S9", "S11"]``); ``None`` = every subject in the 3D file.
        actions: takes or merged action names to keep (``"Walking"`` keeps ``"Walking 1"``); ``None`` = all.
        cameras: camera JSON in the ``h36m_cameras.json`` layout; ``None`` = the bundled calibration.
        camera_ids: only the views of these camera ids are turned into sequences (the others are still
            checked); ``None`` = every camera.

    Returns:
        Sequences with ``keypoints_2d`` (F, 17, 2) normalised, ``pose_3d`` (F, 17, 3) camera-frame
        root-relative metres, ``trajectory`` (F, 3) camera-frame root metres, the camera dict attached;
        subject, action, camera in file order, cameras in ``camera_ids`` order.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: wrong keys, joint counts, NaN/inf, empty sequences, unknown subjects or actions, missing
            cameras, coordinates that are not metres; the message names the file.
    """
    data_dir = Path(data_dir)
    actions = None if actions is None else [str(a) for a in actions]
    path_3d = data_dir / f"data_3d_{name}.npz"
    path_2d = data_dir / f"data_2d_{name}_{keypoints}.npz"
    cam_path = Path(cameras) if cameras is not None else bundled_cameras_path()
    if not cam_path.is_file():
        raise FileNotFoundError(f"{cam_path}: camera JSON not found")
    # VideoPose3D stores pickled dicts: allow_pickle only for these dataset files, never for user input
    positions_3d = npz_dict(read_npz(path_3d, allow_pickle=True), "positions_3d", path_3d)
    npz_2d = read_npz(path_2d, allow_pickle=True)
    positions_2d, meta = npz_dict(npz_2d, "positions_2d", path_2d), _metadata(npz_2d, path_2d)
    # 2D joint count: the one the metadata declares, else either Human3.6M layout
    joints_2d = (int(meta["num_joints"]),) if "num_joints" in meta else (32, 17)
    camera_table = load_cameras(cam_path)
    # The 2D file may name its camera order (prepare mocap does); else the JSON's camera_ids order.
    order = [str(c) for c in meta["camera_ids"]] if "camera_ids" in meta else _camera_order(cam_path)
    extra = {"dataset": name, "keypoints": keypoints}
    wanted = None if camera_ids is None else {str(c) for c in camera_ids}
    if wanted is not None and not wanted & set(order):
        raise ValueError(f"{path_2d}: no test sequence is seen by cameras {sorted(wanted)}; cameras: {order}")
    fps = float(meta.get("fps", H36M_FPS))

    sequences: list[Sequence] = []
    for subject in select_names(positions_3d, subjects, "subjects", path_3d):
        cams = _subject_cameras(camera_table, order, subject, cam_path)
        if subject not in positions_2d:
            raise ValueError(f"{path_2d}: subject {subject!r} is in {path_3d.name} but not in the 2D file")
        for action in _select_actions(positions_3d[subject], actions):
            sequences += _load_take(positions_3d, positions_2d, subject, action, cams, (path_3d, path_2d),
                                    joints_2d, extra, fps, wanted)
    if actions is not None:
        found = {s.action for s in sequences} | {s.action_group for s in sequences}
        unknown = sorted(set(actions) - found)
        if unknown:
            raise ValueError(f"{path_3d}: unknown actions {unknown} for the selected subjects")
    if not sequences:
        raise ValueError(f"{path_3d}: no sequences selected")
    logger.info("loaded %d sequences from %s", len(sequences), path_3d)
    return sequences


def _load_take(positions_3d: dict, positions_2d: dict, subject: str, action: str, cams: list[dict],
               paths: tuple[Path, Path], joints_2d: tuple[int, ...], extra: dict[str, Any],
               fps: float, wanted: set[str] | None = None) -> list[Sequence]:
    """Validate one (subject, action) entry of both files (``paths`` = 3D, 2D) and split it per camera."""
    path_3d, path_2d = paths
    where = f"{subject}/{action}"
    pose_world = _to_17(check_array(positions_3d[subject][action], path_3d, where, (32, 17), 3))  # (F, 17, 3)
    if np.abs(pose_world).max() > _MAX_ABS_METRES:
        raise ValueError(f"{path_3d}: {where}: coordinates up to {np.abs(pose_world).max():.0f}; "
                         "expected metres (millimetres?)")
    views = positions_2d[subject].get(action)
    if views is None:
        raise ValueError(f"{path_2d}: {where} is in {path_3d.name} but not in the 2D file")
    if len(views) != len(cams):
        raise ValueError(f"{path_2d}: {where}: {len(views)} camera views, expected {len(cams)} "
                         f"({[c['id'] for c in cams]})")
    views_px = [_to_17(check_array(view, path_2d, f"{where}/camera {cam['id']}", joints_2d, 2))
                for view, cam in zip(views, cams, strict=True)]  # (F, 17, 2) each
    if wanted is not None:  # skip the projection work of the cameras not asked for
        kept = [i for i, cam in enumerate(cams) if str(cam["id"]) in wanted]
        views_px, cams = [views_px[i] for i in kept], [cams[i] for i in kept]
    return _camera_sequences(pose_world, views_px, cams, subject, action, path_2d, extra, fps)
