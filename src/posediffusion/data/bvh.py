"""BVH motion capture (any rig): parsing, forward kinematics and resampling (mapping: ``bvh_mapping.py``).

Three steps, each a pure function: :func:`parse_bvh` reads the file (HIERARCHY and MOTION sections),
:func:`forward_kinematics` turns channels into joint positions in the file's own axes and unit, and
``bvh_mapping.to_h36m`` maps rig joints to the 17 Human3.6M joints (``BvhMapping``: named presets or a JSON
file), converts the unit and axes, and resamples to the target frame rate.
``bvh_mapping.load_bvh_motions`` does all three for files and folders; ``posediffusion prepare bvh``
then reuses the mocap pipeline (``data/mocap.py``). Conventions, presets and the mapping file format:
``docs/formats.md``.

BVH conventions followed (Biovision; Meredith & Maddock 2001, "Motion capture file formats explained"):
a joint's local transform is a translation by ``OFFSET`` (plus its position channels, if it has any) then a
rotation composed of its rotation channels *in the listed order*, intrinsic: ``Zrotation Xrotation
Yrotation`` gives ``R = Rz @ Rx @ Ry`` (degrees). A child's world position is
``p_parent + R_parent_world @ (offset + translation channels)``.

Shapes: F frames, N rig joints (End Sites included), C channels, J = 17 Human3.6M joints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_CHANNELS = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
#: Name given to an ``End Site``: its parent's name plus this suffix ("Head" -> "Head/End").
END_SITE_SUFFIX = "/End"
#: A source rate within this relative distance of a whole number of fps is that number (".0083333" = 120).
_FPS_SNAP = 1e-4


# ----------------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class BvhJoint:
    """One joint of the hierarchy (an ``End Site`` is a joint without channels named ``<parent>/End``).

    Attributes:
        name: joint name as in the file.
        parent: index of the parent joint, -1 for the root.
        offset: (3,) translation from the parent, file unit and axes.
        channels: channel names in file order (``Xposition`` ... ``Zrotation``), empty for an End Site.
        line: line number of the joint's declaration (1-based).
    """

    name: str
    parent: int
    offset: np.ndarray
    channels: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class BvhMotion:
    """A parsed BVH file.

    Attributes:
        path: where it was read from (for messages).
        joints: N joints, parents before children, in the file's (depth-first) order.
        frame_time: seconds per frame (``Frame Time``).
        values: (F, C) float64 channel values, C = the sum of the joints' channel counts, in file order.
    """

    path: Path
    joints: tuple[BvhJoint, ...]
    frame_time: float
    values: np.ndarray

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def num_frames(self) -> int:
        return len(self.values)

    @property
    def fps(self) -> float:
        """Frames per second, snapped to a whole number when within 0.01 % of one (0.0083333 s -> 120)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) <= _FPS_SNAP * fps else fps


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with their 1-based line numbers."""

    def __init__(self, lines: Sequence[str], path: Path, end: tuple[str, int]) -> None:
        self.path = path
        self.items = [(tok, n) for n, line in enumerate(lines, 1) for tok in line.split()]
        self.pos = 0
        self.end = end  # what follows the hierarchy: ("MOTION", its line) or ("end of file", last line)

    def error(self, line: int, what: str) -> ValueError:
        return ValueError(f"{self.path}:{line}: {what}")

    def peek(self) -> tuple[str, int]:
        return self.items[self.pos] if self.pos < len(self.items) else self.end

    def next(self) -> tuple[str, int]:
        item = self.peek()
        self.pos += 1
        return item

    def expect(self, word: str, context: str) -> int:
        tok, line = self.next()
        if tok != word:
            raise self.error(line, f"expected '{word}' {context}, found '{tok}'")
        return line

    def rest_of_line(self, line: int) -> list[str]:
        """The remaining tokens on ``line`` (consumed)."""
        out = []
        while self.pos < len(self.items) and self.items[self.pos][1] == line:
            out.append(self.items[self.pos][0])
            self.pos += 1
        return out


def read_bvh(path: str | Path) -> BvhMotion:
    """Read and validate a BVH file; bad content is a one-line ``ValueError`` "FILE:LINE: what is wrong"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BVH file not found")
    return parse_bvh(path.read_text(encoding="utf-8", errors="replace"), path)


def parse_bvh(text: str, path: str | Path = "<bvh>") -> BvhMotion:
    """Parse BVH ``text``; ``path`` names the source in error messages ("FILE:LINE: ...")."""
    path = Path(path)
    lines = text.lstrip("\ufeff").splitlines()
    motion_line = next((n for n, line in enumerate(lines) if line.split()[:1] == ["MOTION"]), len(lines))
    end = ("MOTION", motion_line + 1) if motion_line < len(lines) else ("end of file", max(1, len(lines)))
    tokens = _Tokens(lines[:motion_line], path, end)
    tok, line = tokens.next()
    if tok != "HIERARCHY":
        raise tokens.error(line, f"not a BVH file: expected 'HIERARCHY', found '{tok}'")
    tok, line = tokens.next()
    if tok != "ROOT":
        raise tokens.error(line, f"expected 'ROOT', found '{tok}'")
    joints: list[BvhJoint] = []
    _parse_joint(tokens, line, -1, joints)
    tok, line = tokens.peek()
    if tok == "ROOT":
        raise tokens.error(line, "a second ROOT: only one skeleton per file is supported")
    if (tok, line) != end:
        raise tokens.error(line, f"unexpected '{tok}' after the closing '}}' of ROOT {joints[0].name}")
    if motion_line == len(lines):
        raise tokens.error(line, "no MOTION section")
    frame_time, values = _parse_motion(lines, motion_line, joints, path)
    return BvhMotion(path, tuple(joints), frame_time, values)


def _number(tokens: _Tokens, what: str) -> float:
    tok, line = tokens.next()
    try:
        value = float(tok)
    except ValueError:
        raise tokens.error(line, f"{what}: '{tok}' is not a number") from None
    if not math.isfinite(value):
        raise tokens.error(line, f"{what}: '{tok}' is not a finite number")
    return value


def _parse_joint(tokens: _Tokens, line: int, parent: int, joints: list[BvhJoint]) -> None:
    """Parse ``ROOT|JOINT name { OFFSET x y z CHANNELS n ... children }`` (the keyword already read)."""
    words = tokens.rest_of_line(line)
    brace_on_line = bool(words) and words[-1] == "{"
    name = " ".join(words[:-1] if brace_on_line else words)
    kind = "ROOT" if parent < 0 else "JOINT"
    if not name:
        raise tokens.error(line, f"{kind} without a name")
    if name in {j.name for j in joints}:
        raise tokens.error(line, f"joint name '{name}' used twice")
    if not brace_on_line:
        tokens.expect("{", f"after {kind} {name}")
    tokens.expect("OFFSET", f"in joint '{name}'")
    offset = np.array([_number(tokens, f"OFFSET of '{name}'") for _ in range(3)])
    channels = _parse_channels(tokens, name, parent < 0)
    index = len(joints)
    joints.append(BvhJoint(name, parent, offset, channels, line))
    while True:
        tok, at = tokens.next()
        if tok == "JOINT":
            _parse_joint(tokens, at, index, joints)
        elif tok == "End":
            _parse_end_site(tokens, at, index, joints)
        elif tok == "}":
            return
        else:
            raise tokens.error(at, f"expected JOINT, End Site or '}}' closing joint '{name}' (line {line}), "
                                   f"found '{tok}'")


def _parse_channels(tokens: _Tokens, name: str, is_root: bool) -> tuple[str, ...]:
    line = tokens.expect("CHANNELS", f"after the OFFSET of '{name}'")
    words = tokens.rest_of_line(line)
    if not words or not words[0].isdigit():
        raise tokens.error(line, f"CHANNELS of '{name}': expected a channel count, found "
                                 f"'{words[0] if words else 'nothing'}'")
    count, names = int(words[0]), words[1:]
    if count != len(names):
        raise tokens.error(line, f"CHANNELS of '{name}' declares {count} channels but lists {len(names)}")
    unknown = [c for c in names if c.lower() not in _CHANNELS]
    if unknown:
        raise tokens.error(line, f"CHANNELS of '{name}': unknown channel name '{unknown[0]}' (expected "
                                 f"{', '.join(POSITION_CHANNELS + ROTATION_CHANNELS)})")
    channels = tuple(_CHANNELS[c.lower()] for c in names)
    allowed = ((6,) if is_root else (3, 6))
    if count not in allowed or len(set(channels)) != count or (
            count == 3 and set(channels) != set(ROTATION_CHANNELS)):
        need = ("6 channels (3 positions, 3 rotations)" if is_root
                else "3 rotation channels or 6 (3 positions, 3 rotations)")
        raise tokens.error(line, f"CHANNELS of '{name}': {count} channels {list(channels)}, expected {need}")
    return channels


def _parse_end_site(tokens: _Tokens, line: int, parent: int, joints: list[BvhJoint]) -> None:
    tok, at = tokens.next()
    if tok != "Site":
        raise tokens.error(at, f"expected 'End Site', found 'End {tok}'")
    tokens.expect("{", "after End Site")
    tokens.expect("OFFSET", "in End Site")
    name = joints[parent].name + END_SITE_SUFFIX
    offset = np.array([_number(tokens, f"OFFSET of the End Site of '{joints[parent].name}'")
                       for _ in range(3)])
    tokens.expect("}", f"closing the End Site of '{joints[parent].name}' (line {line})")
    joints.append(BvhJoint(name, parent, offset, (), line))


def _header_value(lines: Sequence[str], n: int, key: str, path: Path) -> str:
    """The value after ``key`` ("Frames:" or "Frame Time:") on line index ``n``."""
    line = lines[n].strip() if n < len(lines) else ""
    if not line.startswith(key):
        raise ValueError(f"{path}:{n + 1}: expected '{key} ...', found '{line[:40] or 'end of file'}'")
    return line[len(key):].strip()


def _parse_motion(lines: Sequence[str], motion_line: int, joints: Sequence[BvhJoint],
                  path: Path) -> tuple[float, np.ndarray]:
    """``MOTION`` / ``Frames: F`` / ``Frame Time: t`` / F lines of C numbers -> (t, (F, C) values)."""
    if lines[motion_line].split() != ["MOTION"]:
        raise ValueError(f"{path}:{motion_line + 1}: expected 'MOTION' alone on its line")
    n = motion_line + 1
    while n < len(lines) and not lines[n].strip():
        n += 1
    frames_text, frames_line = _header_value(lines, n, "Frames:", path), n + 1
    if not frames_text.isdigit() or int(frames_text) == 0:
        raise ValueError(f"{path}:{frames_line}: 'Frames: {frames_text}' must be a positive whole number")
    time_text = _header_value(lines, n + 1, "Frame Time:", path)
    try:
        frame_time = float(time_text)
    except ValueError:
        frame_time = math.nan
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise ValueError(f"{path}:{n + 2}: 'Frame Time: {time_text}' must be a positive number of seconds")
    num_frames, num_channels = int(frames_text), sum(len(j.channels) for j in joints)
    rows = [(k + 1, line.split()) for k, line in enumerate(lines[n + 2:], n + 2) if line.strip()]
    if len(rows) < num_frames:
        raise ValueError(f"{path}:{frames_line}: 'Frames: {num_frames}' but {len(rows)} frame lines follow")
    if len(rows) > num_frames:
        raise ValueError(f"{path}:{rows[num_frames][0]}: more frame lines than 'Frames: {num_frames}' "
                         f"({len(rows)})")
    for k, (at, words) in enumerate(rows):
        if len(words) != num_channels:
            raise ValueError(f"{path}:{at}: frame {k} has {len(words)} values, expected {num_channels} "
                             "(the channels of the HIERARCHY)")
    try:
        values = np.array([w for _, words in rows for w in words], dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        at, word = next((at, w) for at, words in rows for w in words if not _is_finite_number(w))
        raise ValueError(f"{path}:{at}: '{word}' is not a finite number")
    return frame_time, values.reshape(num_frames, num_channels)


def _is_finite_number(word: str) -> bool:
    try:
        return math.isfinite(float(word))
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------- kinematics
def axis_rotation(axis: str, angles_deg: np.ndarray) -> np.ndarray:
    """(F,) angles in degrees about ``axis`` ("X", "Y" or "Z") -> (F, 3, 3) right-handed rotation matrices."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    out = np.zeros((*a.shape, 3, 3))
    i, j = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]  # the plane rotated, in positive order
    k = 3 - i - j
    out[..., k, k] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def local_transforms(joint: BvhJoint, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, len(channels)) channel values of ``joint`` -> translation (F, 3) and rotation (F, 3, 3).

    Translation = offset + position channels; rotation = the rotation channels multiplied in listed order.
    """
    translation = np.broadcast_to(joint.offset, (len(values), 3)).copy()
    rotation = np.broadcast_to(np.eye(3), (len(values), 3, 3)).copy()
    for k, channel in enumerate(joint.channels):
        axis = channel[0]
        if channel in POSITION_CHANNELS:
            translation[:, "XYZ".index(axis)] += values[:, k]
        else:
            rotation = rotation @ axis_rotation(axis, values[:, k])
    return translation, rotation


def forward_kinematics(motion: BvhMotion) -> np.ndarray:
    """World positions of every joint, (F, N, 3), in the file's unit and axes."""
    frames, num = motion.num_frames, len(motion.joints)
    positions = np.zeros((frames, num, 3))
    rotations = np.zeros((frames, num, 3, 3))
    column = 0
    for j, joint in enumerate(motion.joints):
        width = len(joint.channels)
        translation, rotation = local_transforms(joint, motion.values[:, column:column + width])
        column += width
        if joint.parent < 0:
            positions[:, j], rotations[:, j] = translation, rotation
        else:
            parent_rot = rotations[:, joint.parent]  # (F, 3, 3)
            positions[:, j] = positions[:, joint.parent] + np.einsum("fij,fj->fi", parent_rot, translation)
            rotations[:, j] = parent_rot @ rotation
    return positions


def resample(positions: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Linear interpolation in time: (F, ...) at ``source_fps`` -> (F', ...) at ``target_fps``.

    Output frame k is at time k / target_fps, for every k whose time lies within the source's
    [0, (F - 1) / source_fps] (so F' = floor((F - 1) * target / source) + 1, e.g. 994 frames at 120 fps
    -> 414 at 50 fps).
    """
    if source_fps == target_fps:
        return positions.copy()
    count = int(math.floor((len(positions) - 1) * target_fps / source_fps + 1e-9)) + 1
    where = np.arange(count) * (source_fps / target_fps)  # (F',) fractional source frame
    low = np.minimum(np.floor(where).astype(np.int64), len(positions) - 1)
    high = np.minimum(low + 1, len(positions) - 1)
    weight = (where - low).reshape(-1, *([1] * (positions.ndim - 1)))
    return (1.0 - weight) * positions[low] + weight * positions[high]
