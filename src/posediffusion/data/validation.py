"""Checks shared by the dataset loaders (``h36m``, ``mpi_inf_3dhp``): arrays read from a file and names
picked from it. Every error names the file, and where in it the problem is."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def check_array(arr: Any, path: Path, where: str, joints: tuple[int, ...], channels: int, *,
                frames: int | None = None, finite: bool = True) -> np.ndarray:
    """Validate a per-frame (F, J, C) array read from ``path`` and return it as float64.

    Args:
        arr: the array (anything numpy converts).
        path, where: named in error messages (``"<path>: <where>: ..."``).
        joints: accepted J values (e.g. ``(32, 17)``).
        channels: C (2 or 3).
        frames: if given, F must equal it.
        finite: also reject NaN/inf (3DHP checks them later, only on valid frames).

    Raises:
        ValueError: not numeric, wrong shape, no frames, wrong frame count, or non-finite values.
    """
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {where}: not a numeric array ({err})") from err
    if arr.ndim != 3 or arr.shape[1] not in joints or arr.shape[2] != channels:
        raise ValueError(f"{path}: {where}: expected shape (F, {' or '.join(map(str, joints))}, {channels}), "
                         f"got {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{path}: {where}: empty sequence")
    if frames is not None and len(arr) != frames:
        raise ValueError(f"{path}: {where}: {len(arr)} frames, expected {frames}")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{path}: {where}: contains NaN or inf")
    return arr


def select_names(available: Iterable[str], wanted: Iterable[str] | None, what: str,
                 path: Path) -> list[str]:
    """Keep ``wanted`` (all if ``None``) in file order; unknown names raise ``ValueError``."""
    available = list(available)
    if wanted is None:
        return available
    wanted = [str(w) for w in wanted]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise ValueError(f"{path}: unknown {what} {unknown}; available: {available}")
    return [a for a in available if a in wanted]
