"""Metric scale (``posediffusion.scale``): bone lengths, the reference skeleton, the robust ``prior`` scale
and the standing-height model, against hand-built skeletons whose lengths are known by construction."""

import numpy as np
import pytest

from posediffusion import scale
from posediffusion.skeleton import H36M_17

J = {name: j for j, name in enumerate(H36M_17.joints)}


def _standing(lengths: dict[tuple[str, str], float] = scale.REFERENCE_LENGTHS_M) -> np.ndarray:
    """(17, 3) upright pose in camera axes (x right, y down) built from ``lengths``: legs, spine, neck and
    head straight along y, arms hanging, shoulders beside and below the thorax at the shoulder width."""
    def length(a, b):
        return lengths[(a, b)] if (a, b) in lengths else lengths[(b, a)]
    down = np.array([0.0, 1.0, 0.0])
    pose = np.zeros((17, 3))
    def hang(parent, child, direction=down):
        pose[J[child]] = pose[J[parent]] + length(parent, child) * direction

    half = length("LShoulder", "RShoulder") / 2
    drop = np.sqrt(length("Thorax", "LShoulder") ** 2 - half**2)
    spine = ("Hip", "Spine", "Thorax", "Neck/Nose", "Head")
    for parent, child in zip(spine[:-1], spine[1:], strict=True):
        hang(parent, child, -down)
    for side, sign in (("R", -1.0), ("L", 1.0)):
        pose[J[f"{side}Hip"]] = [sign * length("Hip", f"{side}Hip"), 0.0, 0.0]
        pose[J[f"{side}Shoulder"]] = pose[J["Thorax"]] + [sign * half, drop, 0.0]
        for parent, child in (("Hip", "Knee"), ("Knee", "Ankle"), ("Shoulder", "Elbow"), ("Elbow", "Wrist")):
            hang(side + parent, side + child)
    return pose


def _sequence(pose: np.ndarray, frames: int = 60, noise_m: float = 0.003, seed: int = 0) -> np.ndarray:
    """(F, 17, 3): ``pose`` turned about the vertical axis and jittered per frame (lengths barely change)."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-np.pi, np.pi, frames)
    c, s = np.cos(angles), np.sin(angles)
    rot = np.zeros((frames, 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1.0, -s, c
    return np.einsum("fij,kj->fki", rot, pose) + rng.normal(0, noise_m, (frames, 17, 3))


def test_bone_lengths_of_a_hand_built_pose():
    pose = np.zeros((17, 3))
    pose[J["RHip"]] = [-0.1, 0.0, 0.0]
    pose[J["RKnee"]] = [-0.1, 0.3, 0.4]  # thigh 0.5 (3-4-5)
    pose[J["Spine"]] = [0.0, -0.2, 0.0]
    pose[J["Thorax"]] = [0.0, -0.2, 0.25]  # 0.25 from Spine
    lengths = scale.bone_lengths(pose)
    bones = H36M_17.bones()
    assert lengths.shape == (16,) and [c for c, _ in bones] == list(range(1, 17))
    # bone k ends in joint k + 1; RAnkle, Neck/Nose and LHip stay at the origin
    expected = {"RHip": 0.1, "RKnee": 0.5, "Spine": 0.2, "Thorax": 0.25, "RAnkle": np.sqrt(0.26),
                "Neck/Nose": np.sqrt(0.1025), "LHip": 0.0}
    for name, value in expected.items():
        assert lengths[J[name] - 1] == pytest.approx(value, abs=1e-12)
    np.testing.assert_allclose(scale.bone_lengths(np.stack([pose, 2 * pose])), [lengths, 2 * lengths])
    assert scale.path_length(pose, ("Hip", "Spine", "Thorax")) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="17, 3"):
        scale.bone_lengths(np.zeros((16, 3)))


def test_reference_is_symmetric_and_its_height_is_the_sum_of_the_chain():
    ref = scale.REFERENCE_LENGTHS_M
    for (a, b), value in ref.items():
        mirrored = tuple(n.replace("L", "\0").replace("R", "L").replace("\0", "R") for n in (a, b))
        assert ref.get(mirrored, ref.get(mirrored[::-1])) == value
    assert len(ref) == 18 and all(0.05 < v < 0.5 for v in ref.values())
    chain = 0.4478 + 0.4145 + 0.2556 + 0.2514 + 0.0728 + 0.1217  # shin, thigh, spine x2, neck, head
    assert scale.reference_height() == pytest.approx(chain / (1 - 0.039 - 0.006), abs=1e-9)
    assert scale.reference_length(("Hip", "Spine", "Thorax")) == pytest.approx(0.2556 + 0.2514)


def test_standing_height_of_an_upright_skeleton_is_its_head_to_ankle_extent_plus_offsets():
    pose = _standing()
    extent = pose[J["RAnkle"], 1] - pose[J["Head"], 1]  # y points down
    height = extent / (1 - scale.ANKLE_TO_SOLE - scale.HEAD_TO_CROWN)
    assert scale.standing_height(pose[None]) == pytest.approx(height, abs=1e-9)
    assert scale.standing_height(pose[None]) == pytest.approx(scale.reference_height(), abs=1e-9)


def test_a_skeleton_shrunk_by_0_7_comes_back_to_the_reference():
    poses = _sequence(0.7 * _standing())
    s = scale.prior_scale(poses)
    assert s == pytest.approx(1 / 0.7, rel=0.01)
    scaled = s * poses
    for name, path in scale.SCALE_SEGMENTS.items():
        measured = np.median(scale.path_length(scaled, path))
        assert measured == pytest.approx(scale.reference_length(path), rel=0.02), name
    assert scale.estimate_scale(poses, "prior") == s and scale.estimate_scale(poses, "none") == 1.0


def test_outlier_frames_do_not_move_the_estimate():
    poses = _sequence(0.7 * _standing())
    clean = scale.prior_scale(poses)
    bad = poses.copy()
    rng = np.random.default_rng(1)
    bad[::5] *= 3.0  # 20 % of the frames three times too large
    bad[1::7] = rng.normal(0, 0.5, (len(bad[1::7]), 17, 3))  # and some garbage
    assert scale.prior_scale(bad) == pytest.approx(clean, rel=0.01)


def test_inferred_joints_do_not_move_the_estimate():
    lengths = dict(scale.REFERENCE_LENGTHS_M)
    for side in "RL":  # legs twice too long, but never seen
        lengths[(f"{side}Hip", f"{side}Knee")] *= 2
        lengths[(f"{side}Knee", f"{side}Ankle")] *= 2
    poses = _sequence(0.7 * _standing(lengths))
    inferred = np.zeros(17, bool)
    inferred[[J[n] for n in ("RKnee", "RAnkle", "LKnee", "LAnkle")]] = True
    assert scale.prior_scale(poses, inferred) == pytest.approx(1 / 0.7, rel=0.01)
    assert scale.prior_scale(poses) < 0.9 / 0.7  # the legs do move it when they count
    per_frame = np.broadcast_to(inferred, poses.shape[:2])
    assert scale.prior_scale(poses, per_frame) == scale.prior_scale(poses, inferred)
    # the height model takes a leg from the side that was seen: a long, never-seen right leg is ignored
    right_leg = np.isin(np.arange(17), [J["RKnee"], J["RAnkle"]])
    long_right = lengths | {("LHip", "LKnee"): 0.4145, ("LKnee", "LAnkle"): 0.4478}
    reference = scale.standing_height(_sequence(_standing(), noise_m=0.0))
    assert scale.standing_height(_sequence(_standing(long_right), noise_m=0.0), right_leg) == \
        pytest.approx(reference, abs=1e-9)
    with pytest.raises(ValueError, match="no limb"):
        scale.prior_scale(poses, np.ones(17, bool))
    with pytest.raises(ValueError, match="inferred must be"):
        scale.prior_scale(poses, np.zeros((3, 17), bool))


@pytest.mark.parametrize("height", [0.5, 1.6, 1.8, 1.9, 2.5])
def test_height_scaling_gives_the_requested_height(height):
    lengths = {k: v * (1.2 if "Knee" in k[1] else 0.9) for k, v in scale.REFERENCE_LENGTHS_M.items()}
    pose = _standing(lengths)
    poses = _sequence(pose, noise_m=0.0)
    s = scale.height_scale(poses, height)
    assert scale.standing_height(s * poses) == pytest.approx(height, abs=1e-3)
    # independently: the scaled upright skeleton's ankle-to-head extent plus the offsets
    extent = s * (pose[J["RAnkle"], 1] - pose[J["Head"], 1])
    assert extent / (1 - 0.039 - 0.006) == pytest.approx(height, abs=1e-3)
    assert scale.estimate_scale(poses, "height", height) == s


@pytest.mark.parametrize("height, message", [
    (0.3, "between 0.5 and 2.5"), (3.0, "between 0.5 and 2.5"), (180.0, r"in metres: 1\.80\?"),
    (float("nan"), "--height nan"), (float("inf"), "--height inf"), (-1.7, "--height -1.7")])
def test_implausible_heights_are_a_clear_error(height, message):
    poses = _sequence(_standing())
    with pytest.raises(ValueError, match=message):
        scale.check_height(height)
    with pytest.raises(ValueError, match=message):
        scale.height_scale(poses, height)


def test_scale_options_are_checked():
    poses = _sequence(_standing())
    with pytest.raises(ValueError, match="--scale 'metric'"):
        scale.estimate_scale(poses, "metric")
    with pytest.raises(ValueError, match="needs --height"):
        scale.estimate_scale(poses, "height")
    with pytest.raises(ValueError, match="--height 1.8 and --scale prior"):
        scale.estimate_scale(poses, "prior", 1.8)
    with pytest.raises(ValueError, match=r"\(F, 17, 3\)"):
        scale.prior_scale(_standing())
