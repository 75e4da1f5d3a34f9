"""Tests for the BVH import (posediffusion.data.bvh): parser, forward kinematics, resampling, rig mappings.

Expected positions are worked out by hand in the comments (90-degree rotations keep them exact), or, for
the rest pose of a whole rig, by summing offsets down the chain (no rotation involved).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posediffusion.cli import main
from posediffusion.data import bvh, bvh_mapping
from posediffusion.skeleton import H36M_17
from tests.helpers import SHARED_DATA

CMU_BVH = SHARED_DATA / "bvh" / "cmu_131_01.bvh"
CMU_NPZ = SHARED_DATA / "mocap" / "cmu_h36m17_50hz.npz"

ROOT6 = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
ROT3 = "Zrotation Xrotation Yrotation"

# A root, one joint and an End Site. Frame 1 (hand-computed): root at (1, 2, 3) turned 90 deg about Z, so
# A = (1, 2, 3) + Rz90 (0, 10, 0) = (1, 2, 3) + (-10, 0, 0) = (-9, 2, 3); A turns 90 deg about X, so the
# End Site = A + Rz90 Rx90 (0, 5, 0) = A + Rz90 (0, 0, 5) = A + (0, 0, 5) = (-9, 2, 8).
CHAIN = f"""HIERARCHY
ROOT Root
{{
  OFFSET 0 0 0
  CHANNELS 6 {ROOT6}
  JOINT A
  {{
    OFFSET 0 10 0
    CHANNELS 3 {ROT3}
    End Site
    {{
      OFFSET 0 5 0
    }}
  }}
}}
MOTION
Frames: 2
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 90 0
"""


def _chain(order: str, values: str) -> str:
    """CHAIN with joint A's channel order and frame values replaced (one frame, root at rest)."""
    text = CHAIN.replace(f"CHANNELS 3 {ROT3}", f"CHANNELS 3 {order}")
    head = text.split("Frames:")[0]
    return head + f"Frames: 1\nFrame Time: 0.5\n0 0 0 0 0 0 {values}\n"


def test_forward_kinematics_of_a_chain_by_hand():
    motion = bvh.parse_bvh(CHAIN)
    assert motion.names == ["Root", "A", "A/End"] and motion.fps == 2.0
    assert [j.parent for j in motion.joints] == [-1, 0, 1]
    positions = bvh.forward_kinematics(motion)
    np.testing.assert_allclose(positions[0], [[0, 0, 0], [0, 10, 0], [0, 15, 0]], atol=1e-12)
    np.testing.assert_allclose(positions[1], [[1, 2, 3], [-9, 2, 3], [-9, 2, 8]], atol=1e-12)


def test_rotation_channels_compose_in_the_listed_order():
    # Z = 90, X = 90 deg on A, End Site offset (0, 5, 0) from A = (0, 10, 0).
    # "Xrotation Yrotation Zrotation": R = Rx90 Rz90; Rz90 (0,5,0) = (-5,0,0); Rx90 (-5,0,0) = (-5,0,0).
    xyz = bvh.forward_kinematics(bvh.parse_bvh(_chain("Xrotation Yrotation Zrotation", "90 0 90")))
    np.testing.assert_allclose(xyz[0, 2], [-5, 10, 0], atol=1e-12)
    # "Zrotation Xrotation Yrotation": R = Rz90 Rx90; Rx90 (0,5,0) = (0,0,5); Rz90 (0,0,5) = (0,0,5).
    zxy = bvh.forward_kinematics(bvh.parse_bvh(_chain("Zrotation Xrotation Yrotation", "90 90 0")))
    np.testing.assert_allclose(zxy[0, 2], [0, 10, 5], atol=1e-12)
    # Y = 90 alone: Ry90 (0,5,0) = (0,5,0): a rotation about the bone changes nothing.
    y_only = bvh.forward_kinematics(bvh.parse_bvh(_chain("Yrotation Xrotation Zrotation", "90 0 0")))
    np.testing.assert_allclose(y_only[0, 2], [0, 15, 0], atol=1e-12)


def test_root_offset_adds_to_position_channels_and_six_channel_joints():
    text = """HIERARCHY
ROOT Root
{
  OFFSET 10 20 30
  CHANNELS 6 Zrotation Xrotation Yrotation Xposition Yposition Zposition
  JOINT A
  {
    OFFSET 0 10 0
    CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 0 4
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.01
0 0 0 1 2 3 7 0 0 0 0 0
"""
    positions = bvh.forward_kinematics(bvh.parse_bvh(text))
    # root = offset + channels = (11, 22, 33); A = root + (0, 10, 0) + (7, 0, 0); End = A + (0, 0, 4)
    np.testing.assert_allclose(positions[0], [[11, 22, 33], [18, 32, 33], [18, 32, 37]], atol=1e-12)


def test_resample_120_to_50_fps_by_hand():
    x = (np.arange(13.0) ** 2)[:, None]  # 13 frames at 120 fps = 0.1 s; x = frame^2
    out = bvh.resample(x, 120.0, 50.0)
    # 50 fps frames at source frames 0, 2.4, 4.8, 7.2, 9.6, 12: linear between the squares around them
    np.testing.assert_allclose(out[:, 0], [0, 4 + 0.4 * 5, 16 + 0.8 * 9, 49 + 0.2 * 15, 81 + 0.6 * 19, 144])
    assert len(bvh.resample(np.zeros((994, 1)), 120.0, 50.0)) == 414  # 993 / 120 s -> frames 0..413
    np.testing.assert_array_equal(bvh.resample(x, 50.0, 50.0), x)


def test_frame_time_snaps_to_whole_fps():
    assert bvh.parse_bvh(CHAIN.replace("Frame Time: 0.5", "Frame Time: .0083333")).fps == 120.0
    assert bvh.parse_bvh(CHAIN.replace("Frame Time: 0.5", "Frame Time: 0.0333333")).fps == 30.0
    odd = bvh.parse_bvh(CHAIN.replace("Frame Time: 0.5", "Frame Time: 0.007"))  # 142.857 fps: kept
    assert odd.fps == pytest.approx(1 / 0.007, rel=1e-12)


# ---- rigs and mapping presets --------------------------------------------------------------------------
# (name, parent, offset); the root is first. An End Site is written for every joint without children.
MIXAMO_CM = [  # centimetres, Y up, facing +Z (the subject's left is +X)
    ("Hips", None, (0, 0, 0)), ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 12, 0)),
    ("Spine2", "Spine1", (0, 14, 0)), ("Neck", "Spine2", (0, 16, 0)), ("Head", "Neck", (0, 10, 0)),
    ("HeadTop_End", "Head", (0, 18, 0)),
    ("LeftShoulder", "Spine2", (6, 12, 0)), ("LeftArm", "LeftShoulder", (12, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine2", (-6, 12, 0)), ("RightArm", "RightShoulder", (-12, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)), ("RightHand", "RightForeArm", (-25, 0, 0)),
    ("LeftUpLeg", "Hips", (9, -6, 0)), ("LeftLeg", "LeftUpLeg", (0, -44, 0)),
    ("LeftFoot", "LeftLeg", (0, -42, 0)), ("LeftToeBase", "LeftFoot", (0, -6, 12)),
    ("RightUpLeg", "Hips", (-9, -6, 0)), ("RightLeg", "RightUpLeg", (0, -44, 0)),
    ("RightFoot", "RightLeg", (0, -42, 0)), ("RightToeBase", "RightFoot", (0, -6, 12)),
]
GENERIC_M = [  # metres, Z up, facing -Y (the subject's left is +X)
    ("Hips", None, (0, 0, 0)), ("Spine", "Hips", (0, 0, 0.1)), ("Chest", "Spine", (0, 0, 0.2)),
    ("Neck", "Chest", (0, 0, 0.25)), ("Head", "Neck", (0, 0, 0.1)),
    ("Shoulder_L", "Chest", (0.05, 0, 0.2)), ("UpperArm_L", "Shoulder_L", (0.12, 0, 0)),
    ("LowerArm_L", "UpperArm_L", (0.28, 0, 0)), ("Hand_L", "LowerArm_L", (0.25, 0, 0)),
    ("Shoulder_R", "Chest", (-0.05, 0, 0.2)), ("UpperArm_R", "Shoulder_R", (-0.12, 0, 0)),
    ("LowerArm_R", "UpperArm_R", (-0.28, 0, 0)), ("Hand_R", "LowerArm_R", (-0.25, 0, 0)),
    ("UpperLeg_L", "Hips", (0.1, 0, -0.05)), ("LowerLeg_L", "UpperLeg_L", (0, 0, -0.45)),
    ("Foot_L", "LowerLeg_L", (0, 0, -0.42)), ("Toes_L", "Foot_L", (0, -0.1, -0.05)),
    ("UpperLeg_R", "Hips", (-0.1, 0, -0.05)), ("LowerLeg_R", "UpperLeg_R", (0, 0, -0.45)),
    ("Foot_R", "LowerLeg_R", (0, 0, -0.42)), ("Toes_R", "Foot_R", (0, -0.1, -0.05)),
]
END_SITE = {"Head": (0, 0, 0.15)}  # generic: Head's End Site is the H36M Head


def bvh_text(rig: list, frames: np.ndarray, frame_time: float = 0.01, prefix: str = "",
             end_sites: dict | None = None) -> str:
    """BVH text of ``rig`` (root: 6 channels, others: 3 rotations ZXY) with (F, C) channel ``frames``."""
    children: dict[str, list] = {}
    for name, parent, offset in rig[1:]:
        children.setdefault(parent, []).append((name, offset))

    def joint(name: str, offset: tuple, depth: int, root: bool = False) -> list[str]:
        pad = "  " * depth
        lines = [f"{pad}{'ROOT' if root else 'JOINT'} {prefix}{name}", f"{pad}{{",
                 f"{pad}  OFFSET {' '.join(map(str, offset))}",
                 f"{pad}  CHANNELS {'6 ' + ROOT6 if root else '3 ' + ROT3}"]
        for child, child_offset in children.get(name, []):
            lines += joint(child, child_offset, depth + 1)
        if name not in children:
            end = (end_sites or {}).get(name, (0, 0, 0))
            lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {' '.join(map(str, end))}",
                      f"{pad}  }}"]
        return lines + [f"{pad}}}"]

    rows = [" ".join(f"{v:.6f}" for v in row) for row in frames]
    return "\n".join(["HIERARCHY", *joint(rig[0][0], rig[0][2], 0, root=True), "MOTION",
                      f"Frames: {len(rows)}", f"Frame Time: {frame_time}", *rows]) + "\n"


def rest_frames(rig: list, root_position: tuple, frames: int = 1) -> np.ndarray:
    """(F, C) channel values: the root at ``root_position``, every rotation zero."""
    values = np.zeros((frames, 6 + 3 * (len(rig) - 1)))
    values[:, :3] = root_position
    return values


def rest_positions(rig: list, root_position: tuple) -> dict[str, np.ndarray]:
    """Joint name -> rest position: the sum of the offsets down the chain (no rotation)."""
    out = {rig[0][0]: np.add(rig[0][2], root_position)}
    for name, parent, offset in rig[1:]:
        out[name] = out[parent] + np.asarray(offset, dtype=np.float64)
    return out


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("prefix", ["mixamorig:", ""])
def test_mixamo_preset_is_detected_and_maps_by_hand(prefix):
    motion = bvh.parse_bvh(bvh_text(MIXAMO_CM, rest_frames(MIXAMO_CM, (0, 100, 0)), prefix=prefix))
    mapping = bvh_mapping.detect_mapping(motion.names, "mixamo.bvh")
    assert mapping.name == "mixamo"
    out = bvh_mapping.to_h36m(motion, mapping)
    assert (out.unit, out.up_axis) == ("cm", "y")  # thigh 44 units -> 440 mm in cm
    # Y-up cm -> Z-up mm: (x, y, z) -> 10 (x, -z, y). Hips at y = 100; UpLegs at (+-9, 94, 0).
    expected = {"Hip": (0, 0, 940), "LHip": (90, 0, 940), "LKnee": (90, 0, 500), "LAnkle": (90, 0, 80),
                "RAnkle": (-90, 0, 80), "Spine": (0, 0, 1220), "Thorax": (0, 0, 1520),
                "Neck/Nose": (0, 0, 1620), "Head": (0, 0, 1800), "LShoulder": (180, 0, 1480),
                "LElbow": (460, 0, 1480), "LWrist": (710, 0, 1480), "RWrist": (-710, 0, 1480)}
    for joint, xyz in expected.items():
        np.testing.assert_allclose(out.positions_mm[0, H36M_17.joints.index(joint)], xyz, atol=1e-9)


def test_generic_preset_z_up_metres_against_summed_offsets():
    motion = bvh.parse_bvh(bvh_text(GENERIC_M, rest_frames(GENERIC_M, (0, 0, 0.95)), end_sites=END_SITE))
    mapping = bvh_mapping.detect_mapping(motion.names, "generic.bvh")
    assert mapping.name == "generic"
    out = bvh_mapping.to_h36m(motion, mapping)
    assert (out.unit, out.up_axis) == ("m", "z")
    rest = rest_positions(GENERIC_M, (0, 0, 0.95))
    rest["Head/End"] = rest["Head"] + END_SITE["Head"]
    spec = {"Hip": ("UpperLeg_L", "UpperLeg_R"), "RHip": ("UpperLeg_R",), "RKnee": ("LowerLeg_R",),
            "RAnkle": ("Foot_R",), "LHip": ("UpperLeg_L",), "LKnee": ("LowerLeg_L",), "LAnkle": ("Foot_L",),
            "Spine": ("Spine", "Chest"), "Thorax": ("Neck",), "Neck/Nose": ("Head",), "Head": ("Head/End",),
            "LShoulder": ("UpperArm_L",), "LElbow": ("LowerArm_L",), "LWrist": ("Hand_L",),
            "RShoulder": ("UpperArm_R",), "RElbow": ("LowerArm_R",), "RWrist": ("Hand_R",)}
    expected = np.array([np.mean([rest[n] for n in names], axis=0) for names in spec.values()]) * 1000
    np.testing.assert_allclose(out.positions_mm[0], expected, atol=1e-9)
    np.testing.assert_allclose(out.positions_mm[0, [0, 7, 10], 2], [900, 1150, 1750], atol=1e-9)


def test_missing_joints_are_listed():
    rig = [j for j in GENERIC_M if j[0] != "Hand_R"]
    motion = bvh.parse_bvh(bvh_text(rig, rest_frames(rig, (0, 0, 0.95))))
    with pytest.raises(ValueError, match=r"x.bvh: no mapping preset fits.*generic lacks \['Hand_R'\]"):
        bvh_mapping.detect_mapping(motion.names, "x.bvh")
    with pytest.raises(ValueError, match=r"mapping 'generic' needs joints missing from the file: "
                                         r"\['Hand_R'\]"):
        bvh_mapping.to_h36m(motion, bvh_mapping.presets()["generic"])


def test_mapping_file_with_weights_unit_and_up_axis(tmp_path):
    names = {j: "Hips" for j in H36M_17.joints}
    names.update({"Hip": {"UpperLeg_L": 3, "UpperLeg_R": 1}, "RHip": "UpperLeg_R", "RKnee": "LowerLeg_R",
                  "LHip": "UpperLeg_L", "LKnee": "LowerLeg_L", "Head": ["Head", "Neck"]})
    path = _write(tmp_path, "map.json", json.dumps({**names, "up_axis": "z", "unit": "m"}))
    mapping = bvh_mapping.load_mapping(path)
    motion = bvh.parse_bvh(bvh_text(GENERIC_M, rest_frames(GENERIC_M, (0, 0, 0.95))))
    out = bvh_mapping.to_h36m(motion, mapping)
    # Hip = 0.75 (0.1, 0, 0.9) + 0.25 (-0.1, 0, 0.9) m = (0.05, 0, 0.9) m; Head = mean(z 1.6, 1.5) = 1.55 m
    np.testing.assert_allclose(out.positions_mm[0, 0], [50, 0, 900], atol=1e-9)
    np.testing.assert_allclose(out.positions_mm[0, 10], [0, 0, 1550], atol=1e-9)
    bad = _write(tmp_path, "bad.json", json.dumps({"Hip": "Hips"}))
    with pytest.raises(ValueError, match=r"bad.json: mapping must define exactly the 17 Human3.6M joints; "
                                         r"missing \['RHip'"):
        bvh_mapping.load_mapping(bad)
    worse = _write(tmp_path, "worse.json", json.dumps({**names, "Hip": {"UpperLeg_L": -1}}))
    with pytest.raises(ValueError, match="worse.json: joint 'Hip': expected a joint name"):
        bvh_mapping.load_mapping(worse)


def test_wrong_unit_is_an_error_that_suggests_the_right_one():
    motion = bvh.parse_bvh(bvh_text(MIXAMO_CM, rest_frames(MIXAMO_CM, (0, 100, 0)), prefix="mixamorig:"))
    with pytest.raises(ValueError, match=r"median thigh \(hip-knee\) length 4.4e\+04 mm with unit m; "
                                         r"the file looks like unit cm: pass --unit cm"):
        bvh_mapping.to_h36m(motion, bvh_mapping.presets()["mixamo"], unit="m")


def test_files_folders_and_duplicate_names(tmp_path):
    text = bvh_text(MIXAMO_CM, rest_frames(MIXAMO_CM, (0, 100, 0), frames=3))
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    _write(tmp_path / "a", "walk.bvh", text)
    _write(tmp_path / "b" / "deep", "run.BVH", text)
    out = bvh_mapping.load_bvh_motions([tmp_path / "a", tmp_path / "b"], fps=100)
    assert sorted(out) == ["run", "walk"] and out["walk"][1].positions_mm.shape == (3, 17, 3)
    _write(tmp_path / "b", "walk.bvh", text)
    with pytest.raises(ValueError, match=r"walk.bvh: motion name 'walk' \(the file stem\) also comes from"):
        bvh_mapping.load_bvh_motions([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: folder holds no .bvh file"):
        bvh_mapping.load_bvh_motions([tmp_path / "empty"])
    with pytest.raises(ValueError, match="--mapping nope: neither a preset"):
        bvh_mapping.load_bvh_motions([tmp_path / "a"], mapping="nope")


# ---- malformed files: "FILE:LINE: what is wrong" -------------------------------------------------------
MALFORMED = [  # (id, edit of CHAIN, line, message)
    ("missing-closing-brace", lambda t: t.replace("  }\n}\nMOTION", "  }\nMOTION"), 15,
     "expected JOINT, End Site or '}' closing joint 'Root' (line 2), found 'MOTION'"),
    ("missing-opening-brace", lambda t: t.replace("JOINT A\n  {\n", "JOINT A\n"), 7,
     "expected '{' after JOINT A, found 'OFFSET'"),
    ("channel-count", lambda t: t.replace(f"CHANNELS 3 {ROT3}", "CHANNELS 3 Zrotation Xrotation"), 9,
     "CHANNELS of 'A' declares 3 channels but lists 2"),
    ("root-three-channels", lambda t: t.replace(f"CHANNELS 6 {ROOT6}", f"CHANNELS 3 {ROT3}"), 5,
     "CHANNELS of 'Root': 3 channels"),
    ("unknown-channel", lambda t: t.replace(f"CHANNELS 3 {ROT3}", "CHANNELS 3 Zrotation Wrotation Yrotation"),
     9, "unknown channel name 'Wrotation'"),
    ("offset-not-a-number", lambda t: t.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), 8,
     "OFFSET of 'A': 'ten' is not a number"),
    ("value-not-a-number", lambda t: t.replace("1 2 3 90", "1 2 x 90"), 20, "'x' is not a finite number"),
    ("value-nan", lambda t: t.replace("1 2 3 90", "1 2 nan 90"), 20, "'nan' is not a finite number"),
    ("too-few-frames", lambda t: t.replace("Frames: 2", "Frames: 3"), 17, "'Frames: 3' but 2 frame lines"),
    ("too-many-frames", lambda t: t.replace("Frames: 2", "Frames: 1"), 20,
     "more frame lines than 'Frames: 1'"),
    ("short-frame", lambda t: t.replace("1 2 3 90 0 0 0 90 0", "1 2 3 90 0 0 0 90"), 20,
     "frame 1 has 8 values, expected 9"),
    ("frame-time-zero", lambda t: t.replace("Frame Time: 0.5", "Frame Time: 0"), 18,
     "'Frame Time: 0' must be a positive number"),
    ("no-motion", lambda t: t.split("MOTION")[0], 15, "no MOTION section"),
    ("not-bvh", lambda t: "hello\n", 1, "not a BVH file: expected 'HIERARCHY', found 'hello'"),
]


@pytest.mark.parametrize("edit, line, message", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_files_name_file_and_line(tmp_path, edit, line, message):
    path = _write(tmp_path, "bad.bvh", edit(CHAIN))
    with pytest.raises(ValueError) as info:
        bvh.read_bvh(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text and "\n" not in text


def test_cli_malformed_file_exits_2_and_writes_nothing(tmp_path, capsys):
    path = _write(tmp_path, "bad.bvh", CHAIN.replace("Frames: 2", "Frames: 3"))
    assert main(["prepare", "bvh", str(path), "--out", str(tmp_path / "out"), "--name", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}:17:" in err[0]
    assert not (tmp_path / "out").exists()


# ---- the real CMU take against the shared conversion ---------------------------------------------------
@pytest.mark.skipif(not (CMU_BVH.is_file() and CMU_NPZ.is_file()), reason="shared data not present")
def test_cmu_131_01_matches_the_shared_conversion():
    out = bvh_mapping.load_bvh_motions([CMU_BVH])["cmu_131_01"][1]
    assert (out.mapping, out.unit, out.up_axis, out.source_fps) == ("cmu", "cmu", "y", 120.0)
    with np.load(CMU_NPZ) as npz:
        reference = npz["131_01_max"].astype(np.float64)
    assert out.positions_mm.shape == reference.shape == (414, 17, 3)
    error = np.linalg.norm(out.positions_mm - reference, axis=-1)  # (F, 17) mm, no alignment needed
    # The shared file used the literal frame time 0.0083333 s (120.0005 fps) where we snap to 120 fps: the
    # resampling instants differ by up to 0.004 source frames, about 0.2 mm on a fast foot.
    assert error.mean() < 0.05 and error.max() < 0.5


CMU_MAX_TO_MB = {  # the 3dsMax-friendly CMU names -> the MotionBuilder-friendly ones (same skeleton)
    "LeftHip": "LeftUpLeg", "LeftKnee": "LeftLeg", "LeftAnkle": "LeftFoot", "LeftToe": "LeftToeBase",
    "RightHip": "RightUpLeg", "RightKnee": "RightLeg", "RightAnkle": "RightFoot", "RightToe": "RightToeBase",
    "lowerback": "LowerBack", "Chest": "Spine", "Chest2": "Spine1", "lowerneck": "Neck", "Neck": "Neck1",
    "LeftCollar": "LeftShoulder", "LeftShoulder": "LeftArm", "LeftElbow": "LeftForeArm",
    "LeftWrist": "LeftHand", "RightCollar": "RightShoulder", "RightShoulder": "RightArm",
    "RightElbow": "RightForeArm", "RightWrist": "RightHand",
}


@pytest.mark.skipif(not CMU_BVH.is_file(), reason="shared data not present")
def test_cmu_motionbuilder_names_give_the_same_positions():
    text = CMU_BVH.read_text()
    renamed = "\n".join(f"{line.split('JOINT')[0]}JOINT {CMU_MAX_TO_MB.get(line.split()[1], line.split()[1])}"
                        if line.split()[:1] == ["JOINT"] else line for line in text.splitlines())
    max_rig, mb_rig = bvh.parse_bvh(text, "max.bvh"), bvh.parse_bvh(renamed, "mb.bvh")
    assert "LeftUpLeg" in mb_rig.names and "LeftHip" not in mb_rig.names
    assert bvh_mapping.detect_mapping(mb_rig.names, "mb.bvh").name == "cmu-mb"
    expected = bvh_mapping.to_h36m(max_rig, bvh_mapping.presets()["cmu"]).positions_mm
    got = bvh_mapping.to_h36m(mb_rig, bvh_mapping.presets()["cmu-mb"]).positions_mm
    np.testing.assert_allclose(got, expected, atol=1e-9)
