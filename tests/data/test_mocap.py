"""Tests for ``posediffusion prepare mocap`` (posediffusion.data.mocap and commands/prepare.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from posediffusion.cli import main
from posediffusion.data import mocap
from tests.helpers import BUNDLED_CAMERAS as CAMERAS
from tests.helpers import CMU_MOCAP as REAL_MOCAP
from tests.helpers import REPO, SHARED_CAMERAS
from tests.helpers import TEMPLATE_MM as REST_POSE_MM  # a standing H36M-17 skeleton, mm, feet near z = 0

SUBJECTS = {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}


def _synthetic_motions() -> dict[str, np.ndarray]:
    """Seven short motions (walks, dances, jumps, a wave), 490 frames in all, float32 mm."""
    def moving(frames: int, velocity_mm: tuple[float, float, float], wave: float = 0.0) -> np.ndarray:
        t = np.arange(frames)[:, None, None]
        pose = REST_POSE_MM[None] + t * np.array(velocity_mm)
        pose[:, [13, 16], 2] += wave * np.sin(t[:, :, 0] / 5.0)
        pose[:, :, :2] -= pose[:, :1, :2].mean(0)  # start roughly at the origin like the CMU data
        return pose.astype(np.float32)

    return {
        "walk_01": moving(100, (30.0, 0.0, 0.0)), "walk_02": moving(80, (0.0, 35.0, 0.0)),
        "dance_01": moving(60, (2.0, 1.0, 0.0), wave=200), "dance_02": moving(70, (-1.0, 2.0, 0.0), 150),
        "jump_01": moving(50, (0.0, 0.0, 1.0)), "jump_02": moving(40, (1.0, 0.0, 2.0)),
        "wave_01": moving(90, (0.0, 0.0, 0.0), wave=300),
    }


def _load(path: Path, key: str):
    with np.load(path, allow_pickle=True) as npz:
        return npz[key].item()


def _project_independently(world_m: np.ndarray, cam: dict) -> np.ndarray:
    """(F, J, 3) world metres -> (F, J, 2) px, written from the JSON's stated convention (float64)."""
    R, T = np.asarray(cam["R"], dtype=np.float64), np.asarray(cam["T"], dtype=np.float64)
    p = np.einsum("ji,fkj->fki", R, world_m.astype(np.float64) - T)  # R^T (X - T)
    x, y = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    k1, k2, k3 = cam["radial_distortion"]
    p1, p2 = cam["tangential_distortion"]
    r2 = x**2 + y**2
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    tan = p1 * y + p2 * x
    u = cam["focal_length"][0] * (x * (radial + tan) + p2 * r2) + cam["center"][0]
    v = cam["focal_length"][1] * (y * (radial + tan) + p1 * r2) + cam["center"][1]
    return np.stack([u, v], axis=-1)


def _cameras_json() -> dict:
    return json.loads(CAMERAS.read_text())


@pytest.fixture(scope="module")
def synthetic_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mocap_in") / "synthetic.npz"
    np.savez(path, **_synthetic_motions())
    return path


@pytest.fixture(scope="module")
def prepared(synthetic_npz, tmp_path_factory) -> tuple[Path, mocap.PreparedMocap]:
    out = tmp_path_factory.mktemp("mocap_out")
    return out, mocap.prepare_mocap(synthetic_npz, CAMERAS, out, name="syn", seed=3)


def test_files_and_layout(prepared):
    out, result = prepared
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["data_3d_syn.npz", "data_2d_syn_gt.npz", "data_2d_syn_det.npz", "split_syn.json"])
    pos3d = _load(out / "data_3d_syn.npz", "positions_3d")
    motions = _synthetic_motions()
    assert set(pos3d) <= SUBJECTS
    assert sorted(m for s in pos3d.values() for m in s) == sorted(motions)
    for kind in ("gt", "det"):
        path = out / f"data_2d_syn_{kind}.npz"
        pos2d, meta = _load(path, "positions_2d"), _load(path, "metadata")
        assert meta["num_joints"] == 17 and meta["layout_name"] == "h36m"
        assert meta["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
        assert meta["camera_ids"] == _cameras_json()["camera_ids"]
        for subject, actions in pos3d.items():
            for motion, arr in actions.items():
                assert arr.dtype == np.float32 and arr.shape == motions[motion].shape
                views = pos2d[subject][motion]
                assert isinstance(views, list) and len(views) == 4
                assert all(v.dtype == np.float32 and v.shape == (len(arr), 17, 2) for v in views)
    assert result.total_frames == sum(len(m) for m in motions.values()) == 490


def test_3d_is_metres_and_rigidly_placed(prepared):
    out, _ = prepared
    pos3d = _load(out / "data_3d_syn.npz", "positions_3d")
    for actions in pos3d.values():
        for motion, placed in actions.items():
            source_m = _synthetic_motions()[motion].astype(np.float64) / 1000.0
            np.testing.assert_allclose(placed[..., 2], source_m[..., 2], atol=1e-6)  # feet stay on the floor
            # rotation about Z + translation: in-plane distances between joints are preserved
            d_src = np.linalg.norm(source_m[:, :, None, :2] - source_m[:, None, :, :2], axis=-1)
            d_out = np.linalg.norm(placed[:, :, None, :2] - placed[:, None, :, :2], axis=-1)
            np.testing.assert_allclose(d_out, d_src, atol=1e-5)


def test_reprojection_reproduces_gt_2d(prepared):
    out, _ = prepared
    raw = _cameras_json()
    pos3d = _load(out / "data_3d_syn.npz", "positions_3d")
    pos2d = _load(out / "data_2d_syn_gt.npz", "positions_2d")
    for subject, actions in pos3d.items():
        for motion, world in actions.items():
            for view, cam_id in zip(pos2d[subject][motion], raw["camera_ids"], strict=True):
                expected = _project_independently(world, raw["subjects"][subject][cam_id])
                assert np.abs(view - expected).max() < 1e-3


def test_subjects_stay_in_view(prepared):
    out, result = prepared
    raw = _cameras_json()
    pos3d = _load(out / "data_3d_syn.npz", "positions_3d")
    pos2d = _load(out / "data_2d_syn_gt.npz", "positions_2d")
    for subject, actions in pos3d.items():
        for motion, world in actions.items():
            for view, cam_id in zip(pos2d[subject][motion], raw["camera_ids"], strict=True):
                cam = raw["subjects"][subject][cam_id]
                depth = (world - np.asarray(cam["T"])) @ np.asarray(cam["R"])[:, 2]
                assert depth.min() > 1.0  # in front of the camera
                assert view.min() >= 0 and (view[..., 0] < cam["res_w"]).all()
                assert (view[..., 1] < cam["res_h"]).all()
            assert result.placements[motion].frames_in_view == len(world)


def _subject_cameras(subject: str) -> list[dict]:
    from posediffusion.camera import load_cameras

    cams = load_cameras(CAMERAS)[subject]
    return [cams[i] for i in _cameras_json()["camera_ids"]]


def _count_in_view(world_m: np.ndarray, subject: str) -> int:
    """Frames whose 17 joints are inside all 4 images of ``subject`` (independent projection)."""
    raw = _cameras_json()
    ok = np.ones(len(world_m), dtype=bool)
    for cam_id in raw["camera_ids"]:
        cam = raw["subjects"][subject][cam_id]
        uv = _project_independently(world_m, cam)
        ok &= ((uv >= 0) & (uv < [cam["res_w"], cam["res_h"]])).all((1, 2))
    return int(ok.sum())


def test_frames_in_view_on_hand_placed_points():
    cams = _subject_cameras("S1")
    centre = mocap.capture_centre(cams)
    assert np.linalg.norm(centre) < 1.0  # the H36M cameras look at the area around the world origin
    near_centre = np.array([[[*centre, 1.0]] * 17])  # (F=1, J, 3)
    far_above = near_centre + [0.0, 0.0, 10.0]  # in front of every camera, above its image
    behind_camera = np.array([[cams[0]["T"] - 0.5 * cams[0]["R"][:, 2]] * 17])
    in_front, in_view = mocap.frames_in_view(np.concatenate([near_centre, far_above, behind_camera]), cams)
    assert in_view.tolist() == [True, False, False]
    assert in_front.tolist() == [True, True, False]


def test_placement_search_keeps_a_long_walk_in_view():
    frames = np.arange(150)[:, None, None]
    walk_m = (REST_POSE_MM[None] + frames * np.array([30.0, 0.0, 0.0])) / 1000.0  # 4.5 m along x
    naive = walk_m.copy()
    naive[..., :2] += mocap.capture_centre(_subject_cameras("S1")) - naive[:, 0, :2].mean(0)
    assert _count_in_view(naive, "S1") < 140  # the straight-on placement loses frames...
    placement = mocap.place_motion(walk_m, _subject_cameras("S1"), np.random.default_rng(0))
    placed = placement.apply(walk_m)
    assert _count_in_view(placed, "S1") == placement.frames_in_view == 150  # ...the search does not
    np.testing.assert_allclose(placed[..., 2], walk_m[..., 2])


def test_split_is_by_motion_deterministic_and_documented(prepared, synthetic_npz, tmp_path):
    out, result = prepared
    split = json.loads((out / "split_syn.json").read_text())
    assert split["seed"] == 3 and split["credit"] == mocap.CREDIT
    assert split["train_subjects"] == ["S1", "S5", "S6", "S7", "S8"]
    assert split["test_subjects"] == ["S9", "S11"]
    pos3d = _load(out / "data_3d_syn.npz", "positions_3d")
    owner = {m: s for s, actions in pos3d.items() for m in actions}  # each motion in exactly one subject
    assert sum(len(a) for a in pos3d.values()) == len(owner) == len(split["motions"])
    assert split["motions"] == owner == result.subjects
    assert {owner[m] for m in ("walk_01", "walk_02")} & {"S9", "S11"}  # walks on both sides
    assert {owner[m] for m in ("walk_01", "walk_02")} - {"S9", "S11"}
    again = mocap.prepare_mocap(synthetic_npz, CAMERAS, tmp_path, name="syn", seed=3)
    assert again.subjects == result.subjects
    np.testing.assert_array_equal(_load(tmp_path / "data_2d_syn_det.npz", "positions_2d")[owner["walk_01"]]
                                  ["walk_01"][2],
                                  _load(out / "data_2d_syn_det.npz", "positions_2d")[owner["walk_01"]]
                                  ["walk_01"][2])


def test_split_motions_balances_kinds_and_fraction():
    rng = np.random.default_rng(0)
    kinds = {f"m{i:02d}": ["walk", "dance", "salsa dance", "basketball", "jump"][i % 5] for i in range(40)}
    kinds["solo"] = "backflip"
    frames = {m: int(rng.integers(100, 1000)) for m in kinds}
    split = mocap.split_motions(frames, kinds, seed=7)
    assert split == mocap.split_motions(frames, kinds, seed=7)
    assert split != mocap.split_motions(frames, kinds, seed=8)
    test = {m for m, s in split.items() if s in ("S9", "S11")}
    fraction = sum(frames[m] for m in test) / sum(frames.values())
    assert abs(fraction - 0.2) < 0.02
    for kind in set(kinds.values()) - {"backflip"}:
        members = {m for m, k in kinds.items() if k == kind}
        assert members & test and members - test, kind
    assert set(split.values()) == SUBJECTS  # every pseudo-subject gets motions


def test_motion_kind():
    assert mocap.motion_kind("dance - glissade devant") == "dance"
    assert mocap.motion_kind("salsa dance") == "salsa dance"
    assert mocap.motion_kind("Start Walk Stop") == "walk"
    assert mocap.motion_kind("charleston2") == "dance"
    assert mocap.motion_kind("basketball - forward dribble") == "basketball"
    assert mocap.motion_kind("jump_02") == "jump"


def test_detector_noise_matches_documented_magnitudes():
    noise = mocap.DetectorNoise()
    clean = np.zeros((20000, 17, 2))
    noisy, outliers = noise.apply(clean, np.random.default_rng(1))
    sigma_white = noise.sigma_per_joint()
    rho, ratio = noise.jitter_correlation, noise.jitter_ratio
    expected_total = sigma_white * np.sqrt(1 + ratio**2)
    for joint in range(17):
        residual = noisy[~outliers[:, joint], joint].astype(np.float64)
        np.testing.assert_allclose(residual.std(0), expected_total[joint], rtol=0.06)
        lag1 = np.mean([np.corrcoef(residual[1:, c], residual[:-1, c])[0, 1] for c in range(2)])
        assert abs(lag1 - rho * ratio**2 / (1 + ratio**2)) < 0.05  # AR(1) share of the variance x rho
    events_per_frame = (np.diff(outliers.any(1).astype(int)) == 1).sum() / len(clean)
    assert 0.5 * noise.outlier_rate < events_per_frame < 1.2 * noise.outlier_rate
    displaced = np.linalg.norm(noisy[outliers], axis=-1)
    assert displaced.max() > 15.0 and 0.0005 < outliers.mean() < 0.01


def test_detector_noise_table_in_docs_matches_code():
    doc = (REPO / "docs" / "mocap.md").read_text()
    for group, (joints, sigma) in mocap.DetectorNoise().groups.items():
        row = re.search(rf"\| {group} \| ([\d, ]+) \| ([\d.]+) \| ([\d.]+) \|", doc)
        assert row, group
        assert [int(j) for j in row.group(1).split(",")] == list(joints)
        assert float(row.group(2)) == sigma and float(row.group(3)) == sigma


def test_det_file_metadata_and_outlier_masks(prepared):
    out, _ = prepared
    path = out / "data_2d_syn_det.npz"
    meta, masks = _load(path, "metadata"), _load(path, "outliers")
    assert meta["noise"]["groups"]["wrists"]["white_sigma_px"] == 4.0
    assert meta["noise"]["jitter_correlation"] == 0.9
    gt, det = _load(out / "data_2d_syn_gt.npz", "positions_2d"), _load(path, "positions_2d")
    for subject, actions in det.items():
        for motion, views in actions.items():
            for k, view in enumerate(views):
                error = np.linalg.norm(view - gt[subject][motion][k], axis=-1)
                clean = ~masks[subject][motion][k]
                assert 0.5 < error[clean].mean() < 10.0


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("arrays", "message"), [
    ({"a": np.zeros((10, 16, 3))}, "shape"),
    ({"a": np.zeros((10, 17, 2))}, "shape"),
    ({"a": np.zeros((0, 17, 3))}, "empty"),
    ({"a": np.full((5, 17, 3), np.nan)}, "NaN"),
    ({"a": np.where(np.arange(3 * 17 * 3).reshape(3, 17, 3) == 40, np.inf, 0.0)}, "NaN/inf"),
    ({}, "no motions"),
])
def test_bad_input_raises_naming_the_file(tmp_path, arrays, message):
    bad = _write(tmp_path / "bad.npz", **arrays)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message) as err:
        mocap.prepare_mocap(bad, CAMERAS, out)
    assert "bad.npz" in str(err.value)
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_missing_file_unknown_motion_and_not_npz(tmp_path, synthetic_npz):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        mocap.load_mocap(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="unknown motion.*'run_99'"):
        mocap.load_mocap(synthetic_npz, ["walk_01", "run_99"])
    text = tmp_path / "text.npz"
    text.write_text("not an npz")
    with pytest.raises(ValueError, match="text.npz"):
        mocap.load_mocap(text)
    with pytest.raises(FileNotFoundError, match="cams.json"):
        mocap.prepare_mocap(synthetic_npz, tmp_path / "cams.json", tmp_path / "out")


def test_sidecar_descriptions_are_read(tmp_path):
    path = _write(tmp_path / "m.npz", x1=_synthetic_motions()["walk_01"], x2=_synthetic_motions()["jump_01"])
    (tmp_path / "m.json").write_text(json.dumps({"motions": {"x1": {"description": "slow walk"}}}))
    _, descriptions = mocap.load_mocap(path)
    assert descriptions == {"x1": "slow walk", "x2": "x2"}


def test_cli_prints_frame_counts(synthetic_npz, tmp_path, capsys):
    code = main(["prepare", "mocap", "--input", str(synthetic_npz), "--cameras", str(CAMERAS),
                 "--out", str(tmp_path), "--name", "cli", "--seed", "1",
                 "--motions", "walk_01,jump_01,wave_01"])
    assert code == 0
    printed = capsys.readouterr().out
    assert re.search(r"total\s+3\s+240\b", printed)  # 100 + 50 + 90 frames
    rows = re.finditer(r"^(S\d+)\s+\w+\s+\d+\s+(\d+)$", printed, re.M)
    per_subject = {row.group(1): int(row.group(2)) for row in rows}
    assert set(per_subject) == SUBJECTS and sum(per_subject.values()) == 240
    assert (tmp_path / "split_cli.json").is_file()
    assert main(["prepare", "mocap", "--input", str(synthetic_npz), "--out", str(tmp_path / "x"),
                 "--motions", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.skipif(not REAL_MOCAP.is_file(), reason="shared mocap data not present")
def test_real_motions(tmp_path):
    names = ["002_03_cc", "007_12_cc", "006_09_cc", "002_01_asf"]
    result = mocap.prepare_mocap(REAL_MOCAP, SHARED_CAMERAS, tmp_path,
                                 seed=0, motions=names)
    split = json.loads((tmp_path / "split_cmu.json").read_text())
    assert split["descriptions"]["002_03_cc"] == "run/jog" and split["kinds"]["007_12_cc"] == "walk"
    raw = _cameras_json()
    pos3d = _load(tmp_path / "data_3d_cmu.npz", "positions_3d")
    pos2d = _load(tmp_path / "data_2d_cmu_gt.npz", "positions_2d")
    source, _ = mocap.load_mocap(REAL_MOCAP, names)
    for subject, actions in pos3d.items():
        for motion, world in actions.items():
            np.testing.assert_allclose(world[..., 2], source[motion][..., 2] / 1000.0, atol=1e-6)
            for view, cam_id in zip(pos2d[subject][motion], raw["camera_ids"], strict=True):
                expected = _project_independently(world, raw["subjects"][subject][cam_id])
                assert np.abs(view - expected).max() < 1e-3
            assert result.placements[motion].frames_in_view >= 0.95 * len(world)


def test_units_are_checked_against_bone_lengths(tmp_path):
    motions = {"walk_01": _synthetic_motions()["walk_01"]}
    metres = _write(tmp_path / "metres.npz", **{k: v / 1000.0 for k, v in motions.items()})
    with pytest.raises(ValueError, match=r"metres.npz: motion 'walk_01': median thigh \(hip-knee\) length "
                                         r"0.42 mm with --unit mm; the numbers look like metres: pass "
                                         r"--unit m"):
        mocap.load_mocap(metres)
    as_mm, _ = mocap.load_mocap(_write(tmp_path / "mm.npz", **motions))
    from_m, _ = mocap.load_mocap(metres, unit="m")
    np.testing.assert_allclose(from_m["walk_01"], as_mm["walk_01"], rtol=1e-6)
    with pytest.raises(ValueError, match="mm.npz: .*420 m with --unit m; the numbers look like millimetres: "
                                         "pass --unit mm"):
        mocap.load_mocap(tmp_path / "mm.npz", unit="m")
    tiny = _write(tmp_path / "tiny.npz", a=motions["walk_01"] / 1e6)
    with pytest.raises(ValueError, match="not a person's size"):
        mocap.load_mocap(tiny)
    with pytest.raises(ValueError, match="--unit 'cm'"):
        mocap.load_mocap(metres, unit="cm")


def test_cli_unit_flag_and_seed(tmp_path, capsys):
    metres = _write(tmp_path / "m.npz", **{k: v / 1000.0 for k, v in _synthetic_motions().items()})
    out = tmp_path / "out"
    assert main(["prepare", "mocap", "--input", str(metres), "--out", str(out), "--motions", "walk_01"]) == 2
    assert "pass --unit m" in capsys.readouterr().err and not out.exists()
    assert main(["prepare", "mocap", "--input", str(metres), "--out", str(out), "--motions", "walk_01",
                 "--unit", "m"]) == 0
    assert (out / "data_3d_cmu.npz").is_file()
    with pytest.raises(ValueError, match="--seed -1"):
        mocap.prepare_mocap(metres, CAMERAS, tmp_path / "o2", seed=-1, unit="m")
