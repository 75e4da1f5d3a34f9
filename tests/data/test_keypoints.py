"""Importers of users' 2D keypoint files: each format on a small fixture in the tool's real layout."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from posediffusion.data.keypoints import (
    Keypoints,
    detect_format,
    fill_missing,
    load_keypoints,
    save_keypoints_npz,
)

H36M = ["Hip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Spine", "Thorax", "Neck/Nose", "Head",
        "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist"]
COCO = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sho", "r_sho", "l_elb", "r_elb", "l_wri", "r_wri",
        "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank"]
HALPE = COCO + ["head", "neck", "hip", "l_btoe", "r_btoe", "l_stoe", "r_stoe", "l_heel", "r_heel"]
BODY25 = ["nose", "neck", "r_sho", "r_elb", "r_wri", "l_sho", "l_elb", "l_wri", "mid_hip", "r_hip", "r_knee",
          "r_ank", "l_hip", "l_knee", "l_ank", "r_eye", "l_eye", "r_ear", "l_ear", "l_btoe", "l_stoe",
          "l_heel", "r_btoe", "r_stoe", "r_heel"]
BLAZE = ["nose", "l_eye_in", "l_eye", "l_eye_out", "r_eye_in", "r_eye", "r_eye_out", "l_ear", "r_ear",
         "mouth_l", "mouth_r", "l_sho", "r_sho", "l_elb", "r_elb", "l_wri", "r_wri", "l_pinky", "r_pinky",
         "l_index", "r_index", "l_thumb", "r_thumb", "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank",
         "l_heel", "r_heel", "l_foot", "r_foot"]


def expected_h36m(points: np.ndarray, names: list[str]) -> np.ndarray:
    """Independent mapping by joint names: (F, K, 2) source -> (F, 17, 2), per docs/formats.md."""
    n = {name: points[:, i] for i, name in enumerate(names)}
    pelvis = n["hip"] if "hip" in n else n["mid_hip"] if "mid_hip" in n else (n["l_hip"] + n["r_hip"]) / 2
    thorax = n["neck"] if "neck" in n else (n["l_sho"] + n["r_sho"]) / 2
    head = n["head"] if "head" in n else (n["l_eye"] + n["r_eye"]) / 2
    joints = [pelvis, n["r_hip"], n["r_knee"], n["r_ank"], n["l_hip"], n["l_knee"], n["l_ank"],
              (pelvis + thorax) / 2, thorax, n["nose"], head, n["l_sho"], n["l_elb"], n["l_wri"],
              n["r_sho"], n["r_elb"], n["r_wri"]]
    return np.stack(joints, axis=1)


def source_points(frames: int, joints: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(50.0, 600.0, size=(frames, joints, 2)).round(2)


def steady_points(frames: int, joints: int, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    """One random body (x in 50..350 + offset) drifting a few pixels per frame: trackable over time."""
    rng = np.random.default_rng(seed)
    body = rng.uniform(50.0, 350.0, size=(1, joints, 2)) + [offset, 0.0]
    return (body + np.cumsum(rng.normal(0, 2, size=(frames, 1, 2)), axis=0)).round(2)


# ---- fixtures in the real layouts --------------------------------------------------------------------


def write_mmpose_predictions(path: Path, main: np.ndarray, other: np.ndarray) -> Path:
    """MMPose inferencer `predictions`: list of frames, each a list of instances; frame 1 has two people."""
    frames = []
    for f, pts in enumerate(main):
        people = [{"keypoints": pts.tolist(), "keypoint_scores": [0.9] * len(pts), "bbox": [[0, 0, 9, 9]],
                   "bbox_score": 0.95}]
        if f == 1:  # a second, lower-scoring person listed first
            people.insert(0, {"keypoints": other[f].tolist(), "keypoint_scores": [0.8] * len(pts),
                              "bbox": [[0, 0, 9, 9]], "bbox_score": 0.4})
        frames.append(people)
    path.write_text(json.dumps(frames))
    return path


def write_coco_results(path: Path, pts: np.ndarray, image_ids: list, drop: int | None = None,
                       scores: np.ndarray | None = None) -> Path:
    """Detectron2/AlphaPose COCO-results: one entry per person, keypoints flat [x, y, v] * K."""
    entries = []
    for f, frame in enumerate(pts):
        if f == drop:
            continue
        v = np.full(len(frame), 0.9) if scores is None else scores[f]
        flat = np.concatenate([frame, v[:, None]], axis=1).reshape(-1).tolist()
        entries.append({"image_id": image_ids[f], "category_id": 1, "keypoints": flat, "score": 0.9,
                        "idx": 1, "box": [0, 0, 10, 10]})
    path.write_text(json.dumps(entries))
    return path


def write_openpose(folder: Path, pts: np.ndarray, numbers: list[int]) -> Path:
    folder.mkdir()
    for frame, number in zip(pts, numbers, strict=True):
        flat = np.concatenate([frame, np.full((len(frame), 1), 0.8)], axis=1).reshape(-1).tolist()
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat,
                                            "face_keypoints_2d": [], "hand_left_keypoints_2d": []}]}
        (folder / f"clip_{number:012d}_keypoints.json").write_text(json.dumps(doc))
    return folder


# ---- COCO / MMPose -------------------------------------------------------------------------------------


def test_mmpose_predictions_maps_coco_and_takes_the_longest_track(tmp_path):
    pts, other = steady_points(4, 17), steady_points(4, 17, seed=1, offset=300.0)
    path = write_mmpose_predictions(tmp_path / "predictions.json", pts, other)
    kp = load_keypoints(path, image_size=(640, 480))
    assert isinstance(kp, Keypoints) and kp.source_format == "coco"
    assert kp.pixels.shape == (4, 17, 2) and kp.pixels.dtype == np.float32
    np.testing.assert_allclose(kp.pixels, expected_h36m(pts, COCO), atol=1e-3)
    assert not kp.filled.any() and kp.image_size == (640, 480) and (kp.track_id, kp.tracks) == (0, 2)
    # --person is a track id: track 1 is the other person, seen in frame 1 only: too little to lift
    with pytest.raises(ValueError, match=r"only 1 frame with usable keypoints \(track 1\)"):
        load_keypoints(path, image_size=(640, 480), person=1)


def test_coco_pelvis_spine_hand_computed(tmp_path):
    pts = source_points(3, 17)
    pts[:, 11], pts[:, 12] = (100.0, 200.0), (120.0, 210.0)  # l_hip, r_hip
    pts[:, 5], pts[:, 6] = (90.0, 100.0), (130.0, 104.0)  # l_sho, r_sho
    kp = load_keypoints(write_mmpose_predictions(tmp_path / "p.json", pts, pts), image_size=(640, 480))
    np.testing.assert_allclose(kp.pixels[0, 0], [110.0, 205.0])  # pelvis = mean of hips
    np.testing.assert_allclose(kp.pixels[0, 8], [110.0, 102.0])  # thorax = mean of shoulders
    np.testing.assert_allclose(kp.pixels[0, 7], [110.0, 153.5])  # spine = mean of pelvis and thorax


def test_mmpose_frame_layout_with_meta_info(tmp_path):
    pts = source_points(3, 17)
    doc = {"meta_info": {"dataset_name": "coco"},
           "instance_info": [{"frame_id": f + 1, "instances": [
               {"keypoints": pts[f].tolist(), "keypoint_scores": [0.9] * 17, "bbox_score": 0.9}]}
               for f in range(3)]}
    path = tmp_path / "results_video.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="image size"):
        load_keypoints(path)
    kp = load_keypoints(path, image_size=(1920, 1080))
    np.testing.assert_allclose(kp.pixels, expected_h36m(pts, COCO), atol=1e-3)


def test_coco_results_gap_is_interpolated_and_flagged(tmp_path):
    pts = source_points(5, 17)
    path = write_coco_results(tmp_path / "coco_results.json", pts, [10, 11, 12, 13, 14], drop=2)
    kp = load_keypoints(path, image_size=(640, 480))
    assert kp.num_frames == 5
    assert kp.filled[2].all() and not kp.filled[[0, 1, 3, 4]].any()
    exp = expected_h36m(pts, COCO)
    np.testing.assert_allclose(kp.pixels[2], (exp[1] + exp[3]) / 2, atol=1e-3)
    np.testing.assert_allclose(kp.pixels[[0, 1, 3, 4]], exp[[0, 1, 3, 4]], atol=1e-3)
    assert kp.confidence[2].max() == 0.0


def test_low_confidence_joint_filled_and_nearest_at_ends(tmp_path):
    pts = source_points(4, 17)
    scores = np.full((4, 17), 0.9)
    scores[0, 9] = scores[1, 9] = 0.1  # left wrist weak in the first two frames
    scores[1, 10] = 0.1  # right wrist weak in frame 1 only
    path = write_coco_results(tmp_path / "r.json", pts, [0, 1, 2, 3], scores=scores)
    kp = load_keypoints(path, image_size=(640, 480), min_confidence=0.3)
    lwrist, rwrist = H36M.index("LWrist"), H36M.index("RWrist")
    np.testing.assert_allclose(kp.pixels[:2, lwrist], [pts[2, 9], pts[2, 9]], atol=1e-3)  # nearest
    np.testing.assert_allclose(kp.pixels[1, rwrist], (pts[0, 10] + pts[2, 10]) / 2, atol=1e-3)
    assert kp.filled[:2, lwrist].all() and kp.filled[1, rwrist] and kp.filled.sum() == 3


def test_head_falls_back_to_ears(tmp_path):
    pts = source_points(3, 17)
    scores = np.full((3, 17), 0.9)
    scores[1, 1] = 0.0  # left eye missing in frame 1
    kp = load_keypoints(write_coco_results(tmp_path / "r.json", pts, [0, 1, 2], scores=scores),
                        image_size=(640, 480))
    np.testing.assert_allclose(kp.pixels[1, 10], (pts[1, 3] + pts[1, 4]) / 2, atol=1e-3)
    np.testing.assert_allclose(kp.pixels[0, 10], (pts[0, 1] + pts[0, 2]) / 2, atol=1e-3)
    assert not kp.filled[1, 10]


def test_halpe_uses_its_own_head_neck_hip(tmp_path):
    pts = source_points(3, 26)
    path = write_coco_results(tmp_path / "alphapose-results.json", pts, ["0.jpg", "1.jpg", "2.jpg"])
    kp = load_keypoints(path, image_size=(640, 480))
    assert kp.source_format == "halpe"
    np.testing.assert_allclose(kp.pixels, expected_h36m(pts, HALPE), atol=1e-3)
    with pytest.raises(ValueError, match="26 keypoints"):
        load_keypoints(path, format="coco", image_size=(640, 480))


# ---- OpenPose ------------------------------------------------------------------------------------------


def test_openpose_folder_sorted_by_number_with_missing_points(tmp_path):
    pts = source_points(3, 25)
    pts[1, 4] = 0.0  # OpenPose writes (0, 0, 0) for a joint it did not find: right wrist, frame 1
    folder = write_openpose(tmp_path / "json", pts, [2, 10, 30])  # "10" sorts before "2" as text
    kp = load_keypoints(folder, image_size=(1280, 720))
    assert kp.source_format == "openpose" and kp.num_frames == 29  # frames 2..30, gaps are empty
    exp = expected_h36m(pts, BODY25)
    np.testing.assert_allclose(kp.pixels[[0, 8, 28]][:, :16], exp[:, :16], atol=1e-3)
    rwrist = H36M.index("RWrist")
    assert kp.filled[8, rwrist]
    start, end = exp[0, rwrist], exp[2, rwrist]
    np.testing.assert_allclose(kp.pixels[8, rwrist], start + (end - start) * 8 / 28, atol=1e-3)


def test_openpose_multi_person_takes_most_confident(tmp_path):
    pts, other = source_points(2, 25), source_points(2, 25, seed=3)
    folder = tmp_path / "op"
    folder.mkdir()
    for f in range(2):
        people = [{"pose_keypoints_2d": np.concatenate([p[f], np.full((25, 1), c)], 1).reshape(-1).tolist()}
                  for p, c in ((other, 0.5), (pts, 0.9))]
        (folder / f"v_{f:012d}_keypoints.json").write_text(json.dumps({"people": people}))
    np.testing.assert_allclose(load_keypoints(folder, image_size=(640, 480)).pixels,
                               expected_h36m(pts, BODY25), atol=1e-3)


# ---- MediaPipe -----------------------------------------------------------------------------------------


def mediapipe_landmarks(frames: int) -> np.ndarray:
    """(F, 33, 4) normalised x, y, z, visibility."""
    rng = np.random.default_rng(5)
    return np.concatenate([rng.uniform(0.1, 0.9, (frames, 33, 2)), rng.normal(size=(frames, 33, 1)),
                           np.full((frames, 33, 1), 0.95)], axis=-1).round(4)


def test_mediapipe_json_npz_csv_agree(tmp_path):
    lm = mediapipe_landmarks(3)
    size = np.array([640.0, 360.0])
    expected = expected_h36m(lm[..., :2] * size, BLAZE)
    frames = [[{"x": p[0], "y": p[1], "z": p[2], "visibility": p[3]} for p in frame] for frame in lm.tolist()]
    (tmp_path / "pose.json").write_text(json.dumps(frames))
    np.savez(tmp_path / "pose.npz", landmarks=lm, image_size=np.array([640, 360]))
    with open(tmp_path / "pose.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame", "landmark", "x", "y", "z", "visibility"])
        writer.writerows([f, j, *lm[f, j]] for f in range(3) for j in range(33))
    for name in ("pose.json", "pose.csv"):
        kp = load_keypoints(tmp_path / name, image_size=(640, 360))
        assert kp.source_format == "mediapipe"
        np.testing.assert_allclose(kp.pixels, expected, atol=1e-3)
    np.testing.assert_allclose(load_keypoints(tmp_path / "pose.npz").pixels, expected, atol=1e-3)


def test_mediapipe_rejects_pixel_coordinates(tmp_path):
    lm = mediapipe_landmarks(3)
    lm[..., :2] *= 500
    np.savez(tmp_path / "pose.npz", landmarks=lm, image_size=np.array([640, 360]))
    with pytest.raises(ValueError, match="normalised"):
        load_keypoints(tmp_path / "pose.npz")


# ---- npz / csv -----------------------------------------------------------------------------------------


def test_npz_roundtrip_confidence_fps_and_normalisation(tmp_path):
    pixels = source_points(4, 17)
    conf = np.full((4, 17), 0.9)
    conf[2, 5] = 0.05
    save_keypoints_npz(tmp_path / "kp.npz", pixels, (1000, 500), conf, fps=25)
    kp = load_keypoints(tmp_path / "kp.npz")
    assert kp.image_size == (1000, 500) and kp.fps == 25.0 and kp.source_format == "npz"
    assert kp.filled[2, 5] and kp.filled.sum() == 1
    np.testing.assert_allclose(kp.pixels[2, 5], (pixels[1, 5] + pixels[3, 5]) / 2, atol=1e-3)
    norm = kp.to_normalised()
    u, v = pixels[0, 0]
    np.testing.assert_allclose(norm[0, 0], [u / 1000 * 2 - 1, v / 1000 * 2 - 500 / 1000], atol=1e-5)


def test_csv_long_with_names_and_wide(tmp_path):
    pixels = source_points(3, 17)
    long_path = tmp_path / "long.csv"
    with open(long_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame", "joint", "x", "y", "confidence"])
        for f in range(3):
            for j in range(17):
                writer.writerow([f, H36M[j] if j % 2 else j, *pixels[f, j], 0.9])
    wide_path = tmp_path / "wide.csv"
    header = [f"{a}{j}" for j in range(17) for a in "xy"]
    np.savetxt(wide_path, pixels.reshape(3, -1), delimiter=",", header=",".join(header), comments="")
    for path in (long_path, wide_path):
        kp = load_keypoints(path, image_size=(640, 480))
        assert kp.source_format == "csv"
        np.testing.assert_allclose(kp.pixels, pixels, atol=1e-3)


# ---- detection and bad input ---------------------------------------------------------------------------


def test_auto_detection(tmp_path):
    pts = source_points(3, 17)
    assert detect_format(write_mmpose_predictions(tmp_path / "a.json", pts, pts)) == "coco"
    assert detect_format(write_coco_results(tmp_path / "b.json", pts, [0, 1, 2])) == "coco"
    assert detect_format(write_coco_results(tmp_path / "c.json", source_points(3, 26), [0, 1, 2])) == "halpe"
    assert detect_format(write_openpose(tmp_path / "d", source_points(2, 25), [0, 1])) == "openpose"
    save_keypoints_npz(tmp_path / "e.npz", pts, (640, 480))
    assert detect_format(tmp_path / "e.npz") == "npz"


def test_unrecognised_file_lists_formats(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="tried coco, halpe, openpose, mediapipe, npz, csv"):
        load_keypoints(path, image_size=(640, 480))
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="not a recognised"):
        load_keypoints(tmp_path / "x.txt")
    with pytest.raises(FileNotFoundError):
        load_keypoints(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown keypoint format"):
        load_keypoints(path, format="bvh")


@pytest.mark.parametrize(("fill", "message"), [(0.0, "no keypoint"), (np.nan, "no keypoint")])
def test_all_zero_or_nan_rejected(tmp_path, fill, message):
    save_keypoints_npz(tmp_path / "k.npz", np.full((4, 17, 2), fill), (640, 480))
    with pytest.raises(ValueError, match=message):
        load_keypoints(tmp_path / "k.npz")


def test_too_few_frames_and_never_seen_joint(tmp_path):
    pixels = source_points(3, 17)
    pixels[1:] = np.nan
    save_keypoints_npz(tmp_path / "one.npz", pixels, (640, 480))
    with pytest.raises(ValueError, match="only 1 frame"):
        load_keypoints(tmp_path / "one.npz")
    pixels = source_points(3, 17)
    pixels[:, 3:] = np.nan  # only the pelvis and right hip and knee: too little to align a body prior
    save_keypoints_npz(tmp_path / "legs.npz", pixels, (640, 480))
    with pytest.raises(ValueError, match=r"legs.npz: joint\(s\) RAnkle, .*LWrist.*seen: Hip, RHip, RKnee"):
        load_keypoints(tmp_path / "legs.npz")


def test_malformed_and_wrong_shapes(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0, 2.0, 0.9] * 10, "score": 1.0}]))
    with pytest.raises(ValueError, match="10 keypoints"):
        load_keypoints(path, image_size=(640, 480))
    np.savez(tmp_path / "bad.npz", keypoints=np.zeros((3, 16, 2)), image_size=np.array([640, 480]))
    with pytest.raises(ValueError, match=r"\(F, 17, 2\)"):
        load_keypoints(tmp_path / "bad.npz")
    path.write_text(json.dumps([{"image_id": 0, "keypoints": 5}, {"image_id": 1, "keypoints": 5}]))
    with pytest.raises(ValueError, match="bad.json: malformed coco file"):
        load_keypoints(path, format="coco", image_size=(640, 480))
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="broken.json"):
        load_keypoints(tmp_path / "broken.json", format="coco", image_size=(640, 480))


def test_fill_missing_hand_values():
    pixels = np.array([[[0.0, 0.0]], [[9.0, 9.0]], [[4.0, 8.0]], [[9.0, 9.0]], [[10.0, 20.0]], [[9.0, 9.0]]])
    valid = np.array([[False], [False], [True], [False], [True], [False]])
    out = fill_missing(pixels, valid)
    np.testing.assert_allclose(out[:, 0], [[4, 8], [4, 8], [4, 8], [7, 14], [10, 20], [10, 20]])


# ---- bounded and plausible input (frame numbers, coordinates, image size, fps, person) -----------------


def _long_csv(path: Path, frames: list, pixels: np.ndarray) -> Path:
    rows = ["frame,joint,x,y"] + [f"{fr},{j},{pixels[k, j, 0]},{pixels[k, j, 1]}"
                                  for k, fr in enumerate(frames) for j in range(17)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_sparse_csv_frames_keep_their_order_without_the_gap(tmp_path, caplog):
    pixels = source_points(3, 17)
    for frames in ([0, 2_000_000, 5], [0, "1e12", 7], [-3, 0, 2_000_000]):
        kp = load_keypoints(_long_csv(tmp_path / "s.csv", frames, pixels), image_size=(640, 640))
        order = np.argsort([float(f) for f in frames])
        np.testing.assert_allclose(kp.pixels, pixels[order], atol=1e-3)  # 3 frames, sorted, no gap
    assert "sparse" in caplog.text
    dense = load_keypoints(_long_csv(tmp_path / "d.csv", [0, 2, 3], pixels), image_size=(640, 640))
    assert dense.num_frames == 4 and dense.filled[1].all()  # a small gap is kept as a missing frame
    for bad in ("inf", "nan", "1.5", "1e300"):
        with pytest.raises(ValueError, match=rf"s.csv: frame number {bad if bad != '1e300' else '1e'}"):
            load_keypoints(_long_csv(tmp_path / "s.csv", [0, bad, 2], pixels), image_size=(640, 640))


def test_points_far_outside_the_image_are_missing_and_counted(tmp_path, caplog):
    pixels = source_points(6, 17)
    pixels[2, 13] = [1e9, 300.0]  # far right
    pixels[4, 3] = [100.0, -700.0]  # more than one image height above
    pixels[1, 5] = [-600.0, 100.0]  # outside, but within one image width of the border: kept
    save_keypoints_npz(tmp_path / "far.npz", pixels, (640, 640))
    kp = load_keypoints(tmp_path / "far.npz")
    assert kp.far_outside == 2 and kp.filled[2, 13] and kp.filled[4, 3] and kp.filled.sum() == 2
    np.testing.assert_allclose(kp.pixels[2, 13], (pixels[1, 13] + pixels[3, 13]) / 2, atol=1e-3)
    np.testing.assert_allclose(kp.pixels[1, 5], [-600.0, 100.0])
    assert "2 joint position(s) lie more than one image size outside" in caplog.text


def test_an_image_size_that_cannot_hold_the_keypoints_is_an_error(tmp_path):
    pixels = source_points(4, 17)  # 50 .. 600 px
    save_keypoints_npz(tmp_path / "kp.npz", pixels, (640, 640))
    with pytest.raises(ValueError, match=r"kp.npz: --image-size 1 1 cannot hold the keypoints: 100%"):
        load_keypoints(tmp_path / "kp.npz", image_size=(1, 1))
    save_keypoints_npz(tmp_path / "big.npz", pixels * 1e6, (640, 640))
    with pytest.raises(ValueError, match="big.npz: image_size 640 640 stored in the file cannot hold"):
        load_keypoints(tmp_path / "big.npz")
    np.savez(tmp_path / "e40.npz", keypoints=np.full((4, 17, 2), 1e40), image_size=np.array([640, 640]))
    with pytest.raises(ValueError, match="e40.npz: .*cannot hold"):
        load_keypoints(tmp_path / "e40.npz")


@pytest.mark.parametrize(("given", "stored", "message"), [
    ((1920.5, 1080), (1000, 1000), r"--image-size 1920.5 1080: .*two positive whole numbers"),
    (None, (1920.5, 1080.0), r"f.npz: image_size 1920.5 1080.0: .*whole numbers"),
    ((0, 1080), None, r"--image-size 0 1080"),
    ((float("nan"), 1080), None, r"--image-size nan 1080"),
    ((1e9, 1080), None, r"at most 100000 px"),
    ((640,), None, r"--image-size 640:"),
])
def test_image_size_must_be_whole_positive_numbers(tmp_path, given, stored, message):
    arrays = {"keypoints": source_points(4, 17)}
    if stored is not None:
        arrays["image_size"] = np.array(stored)
    np.savez(tmp_path / "f.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_keypoints(tmp_path / "f.npz", image_size=given)


def test_npz_without_image_size_takes_the_given_one(tmp_path):
    np.savez(tmp_path / "f.npz", keypoints=source_points(4, 17))
    assert load_keypoints(tmp_path / "f.npz", image_size=(640.0, 640)).image_size == (640, 640)
    with pytest.raises(ValueError, match="f.npz: the image size is not stored"):
        load_keypoints(tmp_path / "f.npz")


@pytest.mark.parametrize("fps", [0.0, -5.0, np.nan, np.inf, "fast", [25.0, 30.0]])
def test_fps_must_be_finite_and_positive(tmp_path, fps):
    np.savez(tmp_path / "f.npz", keypoints=source_points(4, 17), image_size=np.array([640, 640]),
             fps=np.asarray(fps))
    with pytest.raises(ValueError, match="f.npz: fps .* must be a finite positive number"):
        load_keypoints(tmp_path / "f.npz")
    path = tmp_path / "m.json"
    frames = [[{"x": 0.5, "y": 0.5, "visibility": 0.9}] * 33] * 3
    path.write_text(json.dumps({"image_size": [640, 480], "fps": -5, "frames": frames}))
    with pytest.raises(ValueError, match="m.json: fps -5.0"):
        load_keypoints(path)


def test_person_index_that_no_frame_has(tmp_path):
    pts = steady_points(3, 17)
    path = write_mmpose_predictions(tmp_path / "p.json", pts, pts + 300)  # frame 1 has two people
    with pytest.raises(ValueError, match=r"p.json: --person 5: no such person; the file has 2 track\(s\) "
                                         r"\(ids 0, 1\) and at most 2 person\(s\) per frame"):
        load_keypoints(path, image_size=(640, 640), person=5)
    with pytest.raises(ValueError, match="--person -1: no such person"):
        load_keypoints(path, image_size=(640, 640), person=-1)


def test_broken_npz_and_wrong_format_are_one_clear_error(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz: cannot read keypoint npz"):
        load_keypoints(tmp_path / "empty.npz", image_size=(640, 640))
    save_keypoints_npz(tmp_path / "kp.npz", source_points(3, 17), (640, 640))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "kp.npz").read_bytes()[:-40])
    with pytest.raises(ValueError, match="cut.npz: cannot read keypoint npz"):
        load_keypoints(tmp_path / "cut.npz")
    path = write_coco_results(tmp_path / "coco.json", source_points(3, 17), [0, 1, 2])
    with pytest.raises(ValueError, match="coco.json: malformed mediapipe file"):
        load_keypoints(path, format="mediapipe", image_size=(640, 640))
    (tmp_path / "nul.csv").write_bytes(b"frame,joint,x,y\n0,0,1\x00,2\n")
    with pytest.raises(ValueError, match="nul.csv"):
        load_keypoints(tmp_path / "nul.csv", image_size=(640, 640))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(ValueError, match="pipe.csv: not a regular file"):
        load_keypoints(tmp_path / "pipe.csv", image_size=(640, 640))


# ---- missing means missing; never-seen joints are inferred; thresholds per tool ------------------------


def test_nan_and_openpose_zero_points_are_missing_at_any_threshold(tmp_path):
    from tests.data.test_tracking import BODY25 as NAMES
    from tests.data.test_tracking import layout, walker

    person = walker(6, 400, 2)
    pts = np.array([layout(person, NAMES, f) for f in range(6)])
    pts[2, 4] = 0.0  # OpenPose's "not found": right wrist at (0, 0) in frame 2
    pts[3, 7] = np.nan  # a NaN left wrist in frame 3
    folder = write_openpose(tmp_path / "op", pts, list(range(6)))
    for threshold in (0.0, None, 0.5):
        kp = load_keypoints(folder, image_size=(1280, 720), min_confidence=threshold)
        rwrist, lwrist = H36M.index("RWrist"), H36M.index("LWrist")
        assert kp.filled[2, rwrist] and kp.filled[3, lwrist] and kp.filled.sum() == 2
        np.testing.assert_allclose(kp.pixels[2, rwrist], (pts[1, 4] + pts[3, 4]) / 2, atol=1e-3)
        assert np.isfinite(kp.pixels).all()
    pixels = source_points(4, 17)
    pixels[1, 5] = np.nan
    pixels[2, 6] = 0.0
    save_keypoints_npz(tmp_path / "k.npz", pixels, (640, 480), confidence=np.zeros((4, 17)))
    kp = load_keypoints(tmp_path / "k.npz", min_confidence=0.0)
    assert kp.filled[1, 5] and kp.filled[2, 6] and kp.filled.sum() == 2


def _standing_clip(frames: int = 8):
    """(F, 17, 2) Human3.6M pixels of the body prior's template at 0.35 px/mm, walking right."""
    from posediffusion.data.body_prior import TEMPLATE_2D

    return TEMPLATE_2D[None] * 0.35 + np.array([400.0, 300.0]) + np.arange(frames)[:, None, None] * [3.0, 0.0]


def test_a_never_seen_wrist_is_inferred_and_flagged(tmp_path, caplog):
    truth = _standing_clip()
    pixels = truth.copy()
    pixels[:, 13] = np.nan  # the left wrist is never seen
    save_keypoints_npz(tmp_path / "wrist.npz", pixels, (1000, 1000))
    kp = load_keypoints(tmp_path / "wrist.npz")
    assert kp.inferred[:, 13].all() and kp.inferred.sum() == 8 and kp.filled[:, 13].all()
    np.testing.assert_allclose(kp.pixels[:, 13], truth[:, 13], atol=1.0)  # the template hangs from the elbow
    assert "LWrist never seen" in caplog.text and "not a measurement" in caplog.text


def test_an_upper_body_clip_gets_inferred_legs(tmp_path):
    rng = np.random.default_rng(0)
    pixels = _standing_clip(10) + rng.normal(0, 1, (10, 17, 2))
    lower = [0, 1, 2, 3, 4, 5, 6, 7]  # pelvis, hips, legs, spine: a sign-language framing
    pixels[:, lower] = np.nan
    save_keypoints_npz(tmp_path / "upper.npz", pixels, (1000, 1000))
    kp = load_keypoints(tmp_path / "upper.npz")
    assert kp.inferred[:, lower].all() and not kp.inferred[:, 8:].any()
    hip, thorax = kp.pixels[:, 0], kp.pixels[:, 8]
    torso = np.linalg.norm(hip - thorax, axis=-1)
    np.testing.assert_allclose(torso, 490 * 0.35, rtol=0.1)  # below the thorax, one torso length
    assert (hip[:, 1] > thorax[:, 1]).all()


def test_too_little_body_to_infer_says_what_is_seen(tmp_path):
    pixels = _standing_clip()
    pixels[:, [0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16]] = np.nan  # only Thorax, Neck/Nose, Head
    save_keypoints_npz(tmp_path / "face.npz", pixels, (1000, 1000))
    with pytest.raises(ValueError, match=r"face.npz: joint\(s\) Hip, .* too little of the body is seen .*"
                                         r"seen: Thorax, Neck/Nose, Head; needed: at least 6"):
        load_keypoints(tmp_path / "face.npz")


def test_default_thresholds_follow_each_tools_scale(tmp_path):
    from posediffusion.data.keypoints import TOOL_MIN_CONFIDENCE

    assert TOOL_MIN_CONFIDENCE == {"OpenPose": 0.05, "MediaPipe": 0.5}
    pts = source_points(3, 25)
    folder = tmp_path / "op"
    folder.mkdir()
    for f in range(3):
        conf = np.full((25, 1), 0.8)
        conf[:8] = 0.1  # head, neck and arms weak but drawn by OpenPose (--render_threshold 0.05)
        doc = {"people": [{"pose_keypoints_2d": np.concatenate([pts[f], conf], 1).reshape(-1).tolist()}]}
        (folder / f"c_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    kp = load_keypoints(folder, image_size=(640, 640))
    assert kp.min_confidence == 0.05 and not kp.filled.any()
    strict = load_keypoints(folder, image_size=(640, 640), min_confidence=0.2)
    assert strict.filled[:, H36M.index("Thorax")].all() and not strict.filled[:, H36M.index("LKnee")].any()
    lm = mediapipe_landmarks(3)
    lm[:, 15, 3] = 0.4  # left wrist visibility below MediaPipe's 0.5
    np.savez(tmp_path / "mp.npz", landmarks=lm, image_size=np.array([640, 360]))
    kp = load_keypoints(tmp_path / "mp.npz")
    assert kp.min_confidence == 0.5 and kp.filled[:, H36M.index("LWrist")].all() and kp.inferred.any()
    assert not load_keypoints(tmp_path / "mp.npz", min_confidence=0.3).filled.any()
