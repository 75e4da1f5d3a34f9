"""BVH rigs -> Human3.6M-17: joint-name mappings (presets or a JSON file), units, axes, resampling.

:func:`to_h36m` turns a parsed :class:`~posediffusion.data.bvh.BvhMotion` into (F, 17, 3) millimetres, world
frame Z up, at the target frame rate; :func:`load_bvh_motions` does it for files and folders (the motions
``posediffusion prepare bvh`` prepares like ``prepare mocap``). Presets and the mapping file format:
``docs/formats.md``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.data.bvh import BvhMotion, forward_kinematics, read_bvh, resample
from posediffusion.data.units import THIGH_MM, UNITS_MM
from posediffusion.skeleton import H36M_17, median_thigh

logger = logging.getLogger(__name__)

#: ``auto`` picks the unit whose median thigh (hip-knee) is nearest this length (log scale), mm.
TYPICAL_THIGH_MM = 430.0
UP_AXES = ("y", "z", "auto")
#: BVH axes -> world (Z up, right-handed): Y up is a +90 degree rotation about X, (x, y, z) -> (x, -z, y).
_TO_Z_UP = {"y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), "z": np.eye(3)}
DEFAULT_FPS = 50.0
#: Warn when the feet (lower ankle, median over frames) are further than this from z = 0, mm.
_FLOOR_TOLERANCE_MM = 250.0


# ----------------------------------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class BvhMapping:
    """How a rig's joints give the 17 Human3.6M joints.

    Attributes:
        name: preset name or mapping file path.
        joints: Human3.6M joint name -> {rig joint name: weight}; the weights sum to 1 (a weighted mean;
            one name with weight 1 is a plain copy). ``"Head/End"`` names the End Site of ``Head``.
        up_axis: the file's up axis: ``"y"``, ``"z"`` or ``"auto"`` (from the animation: the axis along
            which the head is above the hips).
        unit: the file's length unit (a key of ``UNITS_MM``) or ``"auto"`` (from the thigh length).
        notes: the reasoning behind the derived joints (documentation only).
    """

    name: str
    joints: dict[str, dict[str, float]]
    up_axis: str = "auto"
    unit: str = "auto"
    notes: str = ""

    def rig_joints(self) -> list[str]:
        """Every rig joint name the mapping uses, in first-use order."""
        return list(dict.fromkeys(name for spec in self.joints.values() for name in spec))


def _spec(value: Any, where: str) -> dict[str, float]:
    """A mapping value (name, list of names to average, or {name: weight}) -> {name: normalised weight}."""
    if isinstance(value, str) and value:
        return {value: 1.0}
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        weights: dict[str, float] = {}
        for v in value:
            weights[v] = weights.get(v, 0.0) + 1.0 / len(value)
        return weights
    if (isinstance(value, dict) and value and all(isinstance(k, str) and k for k in value)
            and all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0
                    for w in value.values())):
        total = float(sum(value.values()))
        return {k: float(w) / total for k, w in value.items()}
    raise ValueError(f"{where}: expected a joint name, a non-empty list of names (their mean) or "
                     f"{{name: positive weight}}, got {value!r}")


def make_mapping(name: str, spec: dict[str, Any], up_axis: str = "auto", unit: str = "auto",
                 notes: str = "") -> BvhMapping:
    """Build and check a :class:`BvhMapping` (all 17 Human3.6M joints, known ``up_axis`` and ``unit``)."""
    missing = [j for j in H36M_17.joints if j not in spec]
    unknown = [k for k in spec if k not in H36M_17.joints]
    if missing or unknown:
        raise ValueError(f"{name}: mapping must define exactly the 17 Human3.6M joints; "
                         + "; ".join(part for part in (f"missing {missing}" if missing else "",
                                                       f"unknown {unknown}" if unknown else "") if part))
    if up_axis not in UP_AXES:
        raise ValueError(f"{name}: up_axis {up_axis!r} must be one of {list(UP_AXES)}")
    if unit != "auto" and unit not in UNITS_MM:
        raise ValueError(f"{name}: unit {unit!r} must be 'auto' or one of {list(UNITS_MM)}")
    joints = {j: _spec(spec[j], f"{name}: joint '{j}'") for j in H36M_17.joints}
    return BvhMapping(name, joints, up_axis, unit, notes)


def load_mapping(path: str | Path) -> BvhMapping:
    """Read a mapping JSON: ``{h36m joint: rig joint | [rig joints] | {rig joint: weight}, "up_axis": ...,
    "unit": ...}`` (``up_axis`` and ``unit`` optional, default ``"auto"``; a ``"notes"`` string is kept)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the mapping JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the mapping must be a JSON object {{h36m joint: rig joint(s)}}")
    options = {k: raw.pop(k) for k in ("up_axis", "unit", "notes") if k in raw}
    for key in ("up_axis", "unit", "notes"):
        if key in options and not isinstance(options[key], str):
            raise ValueError(f"{path}: '{key}' must be a string")
    return make_mapping(str(path), raw, options.get("up_axis", "auto"), options.get("unit", "auto"),
                        options.get("notes", ""))


def _side(spec: dict[str, Any], left: str, right: str) -> dict[str, Any]:
    """Expand ``"{S}Knee": "{S}Leg"`` into ``LKnee`` and ``RKnee`` with ``{S}`` = ``left`` / ``right``."""
    def fill(value: Any, side: str) -> Any:
        if isinstance(value, str):
            return value.format(S=side)
        if isinstance(value, list):
            return [fill(v, side) for v in value]
        return {fill(k, side): w for k, w in value.items()}

    out = {}
    for joint, value in spec.items():
        if joint.startswith("{S}"):
            out["L" + joint[3:]] = fill(value, left)
            out["R" + joint[3:]] = fill(value, right)
        else:
            out[joint] = value
    return out


def _presets() -> dict[str, BvhMapping]:
    """The built-in rigs (documented in ``docs/formats.md``); tried in this order by auto-detection."""
    limbs = ("Hip", "Knee", "Ankle", "Shoulder", "Elbow", "Wrist")
    cmu_max = _side({"Hip": ["LeftHip", "RightHip"],
                     **{f"{{S}}{p}": f"{{S}}{p}" for p in limbs},
                     "Spine": "Chest", "Thorax": "Neck", "Neck/Nose": "Head", "Head": "Head/End"},
                    "Left", "Right")
    cmu_mb = _side({"Hip": ["LeftUpLeg", "RightUpLeg"], "{S}Hip": "{S}UpLeg", "{S}Knee": "{S}Leg",
                    "{S}Ankle": "{S}Foot", "{S}Shoulder": "{S}Arm", "{S}Elbow": "{S}ForeArm",
                    "{S}Wrist": "{S}Hand", "Spine": "Spine", "Thorax": "Neck1", "Neck/Nose": "Head",
                    "Head": "Head/End"}, "Left", "Right")
    mixamo = _side({"Hip": ["LeftUpLeg", "RightUpLeg"], "{S}Hip": "{S}UpLeg", "{S}Knee": "{S}Leg",
                    "{S}Ankle": "{S}Foot", "{S}Shoulder": "{S}Arm", "{S}Elbow": "{S}ForeArm",
                    "{S}Wrist": "{S}Hand", "Spine": "Spine1", "Thorax": "Neck", "Neck/Nose": "Head",
                    "Head": "HeadTop_End"}, "Left", "Right")
    generic = _side({"Hip": ["UpperLeg_L", "UpperLeg_R"], "{S}Hip": "UpperLeg_{S}", "{S}Knee": "LowerLeg_{S}",
                     "{S}Ankle": "Foot_{S}", "{S}Shoulder": "UpperArm_{S}", "{S}Elbow": "LowerArm_{S}",
                     "{S}Wrist": "Hand_{S}", "Spine": ["Spine", "Chest"], "Thorax": "Neck",
                     "Neck/Nose": "Head", "Head": "Head/End"}, "L", "R")
    return {
        "cmu": make_mapping("cmu", cmu_max, "y", "cmu", notes=(
            "CMU 3dsMax-friendly BVH (LeftHip/LeftKnee/LeftAnkle, lowerback/Chest/Chest2/lowerneck/Neck/"
            "Head, LeftCollar/LeftShoulder/LeftElbow/LeftWrist); matches the 131_01_max conversion")),
        "cmu-mb": make_mapping("cmu-mb", cmu_mb, "y", "cmu", notes=(
            "CMU MotionBuilder-friendly BVH (LHipJoint/LeftUpLeg/LeftLeg/LeftFoot, LowerBack/Spine/Spine1/"
            "Neck/Neck1/Head, LeftShoulder/LeftArm/LeftForeArm/LeftHand): the same skeleton renamed")),
        "mixamo": make_mapping("mixamo", mixamo, "y", "auto", notes=(
            "Mixamo (mixamorig:Hips, Spine, Spine1, Spine2, Neck, Head, HeadTop_End, LeftShoulder, LeftArm, "
            "LeftForeArm, LeftHand, LeftUpLeg, LeftLeg, LeftFoot); the 'mixamorig:' prefix is optional")),
        "generic": make_mapping("generic", generic, "auto", "auto", notes=(
            "Hips/Spine/Chest/Neck/Head, Shoulder_L/UpperArm_L/LowerArm_L/Hand_L, UpperLeg_L/LowerLeg_L/"
            "Foot_L/Toes_L and _R")),
    }


#: Built-in mappings by name, in auto-detection order (built on first use; no work at import time).
_PRESET_CACHE: dict[str, BvhMapping] = {}


def presets() -> dict[str, BvhMapping]:
    """Preset name -> :class:`BvhMapping` (``cmu``, ``cmu-mb``, ``mixamo``, ``generic``)."""
    if not _PRESET_CACHE:
        _PRESET_CACHE.update(_presets())
    return _PRESET_CACHE


PRESET_NAMES = ("cmu", "cmu-mb", "mixamo", "generic")


def _strip_namespace(name: str) -> str:
    """``mixamorig:LeftArm`` -> ``LeftArm``; ``mixamorig:Head/End`` -> ``Head/End``."""
    return name.rsplit(":", 1)[-1]


def resolve_joints(mapping: BvhMapping, names: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Find the mapping's rig joints among ``names``: (rig joint -> index, missing rig joints).

    An exact name wins; otherwise a name matches a joint whose name without a namespace prefix
    (``mixamorig:``, ``Character1:``) is equal, if exactly one joint does.
    """
    exact = {n: i for i, n in enumerate(names)}
    stripped: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        stripped.setdefault(_strip_namespace(n), []).append(i)
    found, missing = {}, []
    for rig in mapping.rig_joints():
        if rig in exact:
            found[rig] = exact[rig]
        elif len(stripped.get(rig, [])) == 1:
            found[rig] = stripped[rig][0]
        else:
            missing.append(rig)
    return found, missing


def detect_mapping(names: Sequence[str], path: str | Path) -> BvhMapping:
    """The first preset (in ``PRESET_NAMES`` order) whose joints all exist in ``names``."""
    report = []
    for preset in PRESET_NAMES:
        mapping = presets()[preset]
        _, missing = resolve_joints(mapping, names)
        if not missing:
            return mapping
        report.append(f"{preset} lacks {missing}")
    raise ValueError(f"{path}: no mapping preset fits this rig ({'; '.join(report)}); pass --mapping with "
                     "a preset or a JSON file (see docs/formats.md)")


def mapping_matrix(mapping: BvhMapping, names: Sequence[str], path: str | Path) -> np.ndarray:
    """(17, N) weights, ``h36m = W @ rig`` per frame; ``ValueError`` listing the rig joints missing."""
    found, missing = resolve_joints(mapping, names)
    if missing:
        raise ValueError(f"{path}: mapping '{mapping.name}' needs joints missing from the file: {missing}")
    weights = np.zeros((H36M_17.num_joints, len(names)))
    for j, joint in enumerate(H36M_17.joints):
        for rig, w in mapping.joints[joint].items():
            weights[j, found[rig]] += w
    return weights


# ----------------------------------------------------------------------------------------------- conversion
@dataclass(frozen=True)
class ConvertedBvh:
    """One BVH file converted: positions and how they were obtained (stored in the dataset's metadata)."""

    positions_mm: np.ndarray  # (F', 17, 3) float64, millimetres, world frame Z up, at ``fps``
    fps: float
    source_fps: float
    source_frames: int
    mapping: str
    unit: str
    up_axis: str

    def describe(self) -> dict[str, Any]:
        return {"source_fps": self.source_fps, "source_frames": self.source_frames, "fps": self.fps,
                "frames": len(self.positions_mm), "mapping": self.mapping, "unit": self.unit,
                "up_axis": self.up_axis}


def detect_unit(positions: np.ndarray) -> str:
    """Unit of (F, 17, 3) positions: the ``UNITS_MM`` entry whose thigh is nearest ``TYPICAL_THIGH_MM``."""
    thigh = median_thigh(positions)
    if not thigh > 0:
        raise ValueError("zero thigh length: cannot tell the unit")
    return min(UNITS_MM, key=lambda u: abs(math.log(thigh * UNITS_MM[u] / TYPICAL_THIGH_MM)))


def detect_up_axis(positions: np.ndarray) -> str | None:
    """``"y"`` or ``"z"``: the axis along which the head is above the hips in most frames; ``None`` if
    neither (e.g. a negative axis). ``positions`` (F, 17, 3) in the file's axes."""
    up = positions[:, 10] - positions[:, 0]  # (F, 3) Hip -> Head
    axis = int(np.argmax(np.abs(up).sum(0)))
    if axis == 0 or np.median(up[:, axis]) <= 0:
        return None
    return "y" if axis == 1 else "z"


def to_h36m(motion: BvhMotion, mapping: BvhMapping, unit: str | None = None,
            fps: float = DEFAULT_FPS) -> ConvertedBvh:
    """Map, scale, turn to Z up and resample one parsed file.

    Args:
        motion: the parsed file.
        mapping: which rig joints give each Human3.6M joint.
        unit: the file's unit, overriding ``mapping.unit`` (``None`` = the mapping's; ``"auto"`` allowed).
        fps: target frame rate (frames per second).

    Returns:
        positions (F', 17, 3) mm, world frame Z up (the file's vertical origin kept as the floor), at ``fps``.
    """
    rig = forward_kinematics(motion)  # (F, N, 3) file unit and axes
    positions = np.einsum("jn,fnd->fjd", mapping_matrix(mapping, motion.names, motion.path), rig)
    unit = unit or mapping.unit
    if unit == "auto":
        unit = detect_unit(positions)
        logger.debug("%s: unit %s (median thigh %.3g file units)", motion.path, unit, median_thigh(positions))
    elif unit not in UNITS_MM:
        raise ValueError(f"--unit {unit!r}: must be 'auto' or one of {list(UNITS_MM)}")
    detected = detect_up_axis(positions)
    up_axis = mapping.up_axis
    if up_axis == "auto":
        if detected is None:
            raise ValueError(f"{motion.path}: cannot tell the up axis (the head is not above the hips along "
                             "+Y or +Z); give a mapping file with \"up_axis\"")
        up_axis = detected
    elif detected is not None and detected != up_axis:
        logger.warning("%s: mapping '%s' says %s is up, but the head is above the hips along %s",
                       motion.path, mapping.name, up_axis.upper(), detected.upper())
    world = np.einsum("ij,fkj->fki", _TO_Z_UP[up_axis], positions) * UNITS_MM[unit]
    _check_size(world, unit, motion.path)
    world = resample(world, motion.fps, fps)
    _check_floor(world, motion.path)
    return ConvertedBvh(world, float(fps), motion.fps, motion.num_frames, mapping.name, unit, up_axis)


def _check_size(world_mm: np.ndarray, unit: str, path: Path) -> None:
    """``ValueError`` unless the median thigh is a person's (``THIGH_MM``, as ``prepare mocap`` checks)."""
    thigh = median_thigh(world_mm)
    if not THIGH_MM[0] <= thigh <= THIGH_MM[1]:
        guess = detect_unit(world_mm / UNITS_MM[unit]) if thigh > 0 else None
        advice = f"the file looks like unit {guess}: pass --unit {guess}" if guess and guess != unit \
            else "not a person's size"
        raise ValueError(f"{path}: median thigh (hip-knee) length {thigh:.4g} mm with unit {unit}; {advice}")


def _check_floor(world_mm: np.ndarray, path: Path) -> None:
    feet = float(np.median(world_mm[:, [3, 6], 2].min(axis=1)))
    if abs(feet) > _FLOOR_TOLERANCE_MM:
        logger.warning("%s: the ankles are %.0f mm %s z = 0 (median): the file's floor is not at height 0, "
                       "or its root positions are absolute while the root OFFSET is not zero", path,
                       abs(feet), "above" if feet > 0 else "below")


def find_bvh_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Files and folders -> BVH files: a folder contributes every ``*.bvh`` below it (any case, sorted)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() == ".bvh" and p.is_file())
            if not found:
                raise ValueError(f"{item}: folder holds no .bvh file")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return files


def motion_names(files: Sequence[Path]) -> dict[str, Path]:
    """Motion name (the file stem) -> file; ``ValueError`` naming both files when a stem repeats."""
    names: dict[str, Path] = {}
    for path in files:
        if path.stem in names:
            if names[path.stem].resolve() == path.resolve():
                continue
            raise ValueError(f"{path}: motion name '{path.stem}' (the file stem) also comes from "
                             f"{names[path.stem]}; rename one of them")
        names[path.stem] = path
    return names


def load_bvh_motions(inputs: Iterable[str | Path], mapping: str | Path | None = None, unit: str | None = None,
                     fps: float = DEFAULT_FPS) -> dict[str, tuple[Path, ConvertedBvh]]:
    """Read and convert BVH files and folders: motion name (file stem) -> (path, :class:`ConvertedBvh`).

    ``mapping`` is a preset name, a JSON file, or ``None`` (auto-detected per file); ``unit`` overrides the
    mapping's unit. Every file is parsed and converted before anything is returned, so one bad file fails
    the whole call.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps {fps}: must be a positive number")
    chosen = None
    if mapping is not None:
        chosen = presets().get(str(mapping)) or (load_mapping(mapping) if Path(mapping).is_file() else None)
        if chosen is None:
            raise ValueError(f"--mapping {mapping}: neither a preset ({', '.join(PRESET_NAMES)}) nor a file")
    out = {}
    for name, path in motion_names(find_bvh_files(inputs)).items():
        motion = read_bvh(path)
        rig_mapping = chosen or detect_mapping(motion.names, path)
        out[name] = (path, to_h36m(motion, rig_mapping, unit, fps))
        logger.debug("%s: %d frames at %g fps -> %d at %g fps (mapping %s, unit %s, %s up)", path,
                    motion.num_frames, motion.fps, len(out[name][1].positions_mm), fps, rig_mapping.name,
                    out[name][1].unit, out[name][1].up_axis.upper())
    return out
