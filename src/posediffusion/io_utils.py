"""Small I/O helpers shared by every writer and reader: atomic writes so that no reader ever sees half a
file, output-path checks (only new paths or regular files are written; symlinks write to their target), and
npz reading with errors that name the file. Pickled members (the dicts of the VideoPose3D / P-STMO layouts)
go through a restricted unpickler that builds only arrays and plain containers, never code: see
``docs/security.md``."""

from __future__ import annotations

import codecs
import collections
import contextlib
import os
import pickle
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.lib.format as npy_format


def give_default_mode(path: Path) -> None:
    """chmod ``path`` (and, for a folder, everything in it) to the mode a plain ``open`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
    if path.is_dir():
        for child in path.rglob("*"):
            os.chmod(child, (0o777 if child.is_dir() else 0o666) & ~umask)


def _label(path: Path, flag: str | None) -> str:
    return f"{flag} {path}" if flag else str(path)


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (as seen by ``lstat``)."""
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def _check_parent(target: Path, label: str) -> None:
    """The folder of ``target`` exists or can be created: its nearest existing ancestor is a writable
    folder."""
    ancestor = _first_existing(target.parent)
    if not ancestor.is_dir():
        raise ValueError(f"{label}: cannot write there, {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{label}: cannot write there, folder {ancestor} is not writable")


def check_output_path(path: str | Path, *, flag: str | None = None,
                      suffixes: Iterable[str] | None = None) -> Path:
    """Check that a file may be written at ``path`` and return where it will be written.

    Allowed: a new path (missing folders are created when writing) or an existing regular file, which is
    replaced. A symlink is followed: its (resolved) target is written and the link stays. Refused with a
    ``ValueError`` naming ``flag`` and the path: a wrong suffix (``suffixes``, case-insensitive), a folder, a
    device file, FIFO or socket, a symlink loop, or a parent that is a file or not writable.
    """
    path = Path(path)
    label = _label(path, flag)
    if path.name in ("", ".", ".."):
        raise ValueError(f"{label}: not a file name")
    target = Path(os.path.realpath(path))
    if os.path.islink(target):
        raise ValueError(f"{label}: symlink loop")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        mode = None  # a parent is a file: reported by _check_parent
    except OSError as err:
        raise ValueError(f"{label}: cannot check the path ({err.strerror})") from err
    if mode is not None and stat.S_ISDIR(mode):
        raise ValueError(f"{label}: is a folder; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(f"{label}: is not a regular file (a device, FIFO or socket); refusing to write "
                         "to it")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if path.suffix.lower() not in allowed:
            raise ValueError(f"{label}: the file name must end in {' or '.join(allowed)}")
    _check_parent(target, label)
    return target


def check_output_folder(path: str | Path, *, flag: str | None = None) -> Path:
    """Check that ``path`` is a folder or can be created as one; return it. ``ValueError`` naming ``flag``."""
    path = Path(path)
    label = _label(path, flag)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{label}: exists and is not a folder")
    if not path.exists():
        _check_parent(path, label)
    elif not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{label}: folder is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, *, flag: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    ``path`` is checked first (:func:`check_output_path`): only a new path or a regular file is replaced,
    and a symlink writes to its target. The temporary name keeps ``path``'s suffix so that libraries
    choosing a format by suffix still work.
    """
    path = check_output_path(path, flag=flag)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{_label(path, flag)}: cannot create its folder ({err.strerror})") from err
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


#: What a pickled npz member may contain: numpy arrays and scalars (and the numpy functions that rebuild
#: them), dicts, lists, tuples, str, bytes, int, float, complex, bool and None. Filled on first use.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {}
#: Largest .npy header read (numpy's own default limit).
_MAX_HEADER_SIZE = 10000
#: Type names listed in the refusal message.
_ALLOWED_TEXT = "numpy arrays, dicts, lists, tuples, str, bytes, numbers, bool and None"


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python-2-protocol pickles use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as Python-2-protocol pickles store b"" (no argument, so no allocation of any size)."""
    if args:
        raise pickle.UnpicklingError("refused bytes(...) with arguments")
    return b""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    if not _ALLOWED_GLOBALS:
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, whatever its module
        scalar = np.float64(0).__reduce__()[0]
        frombuffer = np.zeros(1).__reduce_ex__(5)[0]
        for core in ("numpy.core", "numpy._core"):  # numpy 1 and numpy 2 module names
            _ALLOWED_GLOBALS[(f"{core}.multiarray", "_reconstruct")] = reconstruct
            _ALLOWED_GLOBALS[(f"{core}.multiarray", "scalar")] = scalar
            _ALLOWED_GLOBALS[(f"{core}.numeric", "_frombuffer")] = frombuffer
        _ALLOWED_GLOBALS[("numpy", "ndarray")] = np.ndarray
        _ALLOWED_GLOBALS[("numpy", "dtype")] = np.dtype
        for builtins in ("builtins", "__builtin__"):  # Python 3 and Python 2 names
            _ALLOWED_GLOBALS[(builtins, "complex")] = complex
            _ALLOWED_GLOBALS[(builtins, "bytes")] = _empty_bytes
        _ALLOWED_GLOBALS[("_codecs", "encode")] = _latin1_encode
        _ALLOWED_GLOBALS[("collections", "OrderedDict")] = collections.OrderedDict
    return _ALLOWED_GLOBALS


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that cannot run code: it resolves only the globals of :data:`_ALLOWED_GLOBALS`.

    Everything a pickle can call comes from ``find_class`` (``REDUCE``, ``NEWOBJ``, ``INST``, ``OBJ`` and
    the extension registry all go through it), so a payload such as ``os.system`` or any class with a
    ``__reduce__`` is refused with ``pickle.UnpicklingError`` before it runs. Persistent ids are refused.
    """

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_globals().get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a pickled member may only hold "
                                         f"{_ALLOWED_TEXT}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id")


def restricted_loads(fh: IO[bytes]) -> Any:
    """Unpickle one object from ``fh`` with :class:`RestrictedUnpickler` (latin-1 for Python 2 strings)."""
    return RestrictedUnpickler(fh, encoding="latin1").load()


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _npy_header(fh: IO[bytes]) -> np.dtype:
    """Read the magic and header of a .npy stream; return its dtype (the stream is left at the data)."""
    version = npy_format.read_magic(fh)
    if version == (1, 0):
        _, _, dtype = npy_format.read_array_header_1_0(fh, max_header_size=_MAX_HEADER_SIZE)
    elif version == (2, 0):
        _, _, dtype = npy_format.read_array_header_2_0(fh, max_header_size=_MAX_HEADER_SIZE)
    else:  # (3, 0): utf-8 field names; numpy reads it with the same private helper
        _, _, dtype = npy_format._read_array_header(fh, version, max_header_size=_MAX_HEADER_SIZE)
    return dtype


def _read_member(archive: zipfile.ZipFile, name: str, allow_pickle: bool) -> Any:
    """One member of an npz: a .npy array (object arrays through the restricted unpickler) or raw bytes."""
    if not name.endswith(".npy"):
        return archive.read(name)  # as np.load does for other members
    with archive.open(name) as fh:
        dtype = _npy_header(fh)
        if dtype.hasobject:
            if not allow_pickle:
                raise ValueError(f"member '{name}' is a pickled object array; this file type may only "
                                 "hold plain arrays")
            try:
                array = restricted_loads(fh)
            except (pickle.UnpicklingError, MemoryError, RecursionError) as err:
                raise ValueError(f"member '{name}': {_one_line(err)}") from err
            except Exception as err:  # any other failure of a malformed pickle stream
                raise ValueError(f"member '{name}': malformed pickle ({type(err).__name__}: "
                                 f"{_one_line(err)})") from err
            if not isinstance(array, np.ndarray):
                raise ValueError(f"member '{name}' holds a {type(array).__name__}, not an array")
            return array
    with archive.open(name) as fh:
        return npy_format.read_array(fh, allow_pickle=False, max_header_size=_MAX_HEADER_SIZE)


def read_npz(path: str | Path, *, allow_pickle: bool = False, what: str = "npz",
             hint: str = "") -> dict[str, np.ndarray]:
    """Every array of an npz file, read at once.

    ``allow_pickle`` only for layouts that store dicts (VideoPose3D / P-STMO); even then object arrays are
    read by :class:`RestrictedUnpickler`, which builds only arrays and plain containers (never code).
    Files users hand in (predictions, mocap, keypoints) are read without it: object arrays are refused.

    Raises ``FileNotFoundError`` ("<path>: <what> file not found") or ``ValueError`` ("<path>: cannot read
    <hint or what> (<reason>)"), naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} file not found")
    if not path.is_file():
        raise ValueError(f"{path}: cannot read {hint or what} (not a regular file)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            return {name.removesuffix(".npy"): _read_member(archive, name, allow_pickle) for name in names}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            MemoryError) as err:
        raise ValueError(f"{path}: cannot read {hint or what} ({_one_line(err)})") from err


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
