"""Small I/O helpers shared by every writer and reader: atomic writes so that no reader ever sees half a
file, and npz reading (including the pickled dicts of the VideoPose3D / P-STMO layouts) with errors that name
the file."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def give_default_mode(path: Path) -> None:
    """chmod ``path`` (and, for a folder, everything in it) to the mode a plain ``open`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
    if path.is_dir():
        for child in path.rglob("*"):
            os.chmod(child, (0o777 if child.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    The temporary name keeps ``path``'s suffix so that libraries choosing a format by suffix still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    give_default_mode(tmp_path)  # mkstemp creates 0600
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_npz_atomic(path: str | Path, **arrays: object) -> None:
    """``np.savez_compressed`` to ``path`` atomically (object arrays such as dicts are allowed)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_npz(path: str | Path, *, allow_pickle: bool = False, what: str = "npz",
             hint: str = "") -> dict[str, np.ndarray]:
    """Every array of an npz file, read at once.

    ``allow_pickle`` only for layouts that store dicts (VideoPose3D / P-STMO); files users hand in
    (predictions, mocap) are read without it, so they cannot execute code.

    Raises ``FileNotFoundError`` ("<path>: <what> file not found") or ``ValueError`` ("<path>: cannot read
    <hint or what> (<reason>)"), naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    try:
        with np.load(path, allow_pickle=allow_pickle) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: cannot read {hint or what} ({err})") from err


def npz_dict(npz: dict[str, Any], key: str, path: str | Path) -> dict[str, Any]:
    """``npz[key]`` as a Python dict (VideoPose3D and P-STMO store pickled dicts in 0-d object arrays).

    ``npz`` is what ``read_npz(path, allow_pickle=True)`` returned. Raises ``ValueError`` naming the file
    when the key is missing or is not a dict.
    """
    if key not in npz:
        raise ValueError(f"{path}: no '{key}' key (found {sorted(npz)})")
    value = npz[key]
    value = value.item() if isinstance(value, np.ndarray) and value.dtype == object else value
    if not isinstance(value, dict):
        raise ValueError(f"{path}: '{key}' must be a dict (name -> data), got {type(value)}")
    return value
