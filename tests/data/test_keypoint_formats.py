"""The layouts added for issue 12 (VideoPose3D and Detectron2 npz, Detectron2 COCO-results at its own score
scale, MMPose per-image folders, OpenPose <= 1.1 and --keypoint_scale, Halpe-136, COCO annotations,
PoseFlow, MediaPipe csv dumps), auto-detected, and the frame numbers every reader keeps.

Each fixture is a small hand-made file in the tool's layout; the mapping to Human3.6M-17 is checked against
``expected_h36m`` (an independent by-name mapping) and a few hand-computed values.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from posediffusion.data.keypoint_formats import READERS, detect_format
from posediffusion.data.keypoints import load_keypoints, save_keypoints_npz
from tests.data.test_keypoints import (
    BLAZE,
    BODY25,
    COCO,
    H36M,
    HALPE,
    expected_h36m,
    mediapipe_landmarks,
    source_points,
    write_coco_results,
    write_openpose,
)

HIP, SPINE, THORAX, LWRIST = (H36M.index(name) for name in ("Hip", "Spine", "Thorax", "LWrist"))


def _object(value: object) -> np.ndarray:
    array = np.empty((), dtype=object)
    array[()] = value
    return array


def _hand_points(frames: int, joints: int) -> np.ndarray:
    """Source points with hips and shoulders at hand-picked pixels (COCO/Halpe indices 5, 6, 11, 12)."""
    pts = source_points(frames, joints)
    pts[:, 11], pts[:, 12] = (100.0, 200.0), (120.0, 210.0)  # l_hip, r_hip
    pts[:, 5], pts[:, 6] = (90.0, 100.0), (130.0, 104.0)  # l_sho, r_sho
    return pts


def _check_hand_values(pixels: np.ndarray) -> None:
    np.testing.assert_allclose(pixels[0, HIP], [110.0, 205.0], atol=1e-3)  # mean of the hips
    np.testing.assert_allclose(pixels[0, THORAX], [110.0, 102.0], atol=1e-3)  # mean of the shoulders
    np.testing.assert_allclose(pixels[0, SPINE], [110.0, 153.5], atol=1e-3)  # mean of pelvis and thorax


# ---- VideoPose3D data_2d_custom npz --------------------------------------------------------------------


def write_vp3d_custom(path: Path, tracks: dict[str, np.ndarray], layout: str = "coco",
                      symmetry=([1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16])) -> Path:
    """prepare_data_2d_custom.py output: positions_2d {video: {'custom': [(F, 17, 2)]}} and metadata."""
    metadata = {"layout_name": layout, "num_joints": 17, "keypoints_symmetry": [list(s) for s in symmetry],
                "video_metadata": {name: {"w": 1280, "h": 720} for name in tracks}}
    positions = {name: {"custom": [pts.astype(np.float32)]} for name, pts in tracks.items()}
    np.savez_compressed(path, positions_2d=_object(positions), metadata=_object(metadata))
    return path


def test_videopose3d_custom_npz(tmp_path):
    pts = _hand_points(5, 17)
    path = write_vp3d_custom(tmp_path / "data_2d_custom_myvideos.npz", {"walk.mp4": pts})
    assert detect_format(path) == "videopose3d"
    kp = load_keypoints(path)  # the image size comes from video_metadata
    assert kp.source_format == "videopose3d" and kp.image_size == (1280, 720) and kp.fps is None
    np.testing.assert_allclose(kp.pixels, expected_h36m(pts, COCO), atol=1e-3)
    _check_hand_values(kp.pixels)
    assert kp.first_frame == 0 and kp.frame_ids.tolist() == [0, 1, 2, 3, 4] and not kp.filled.any()


def test_videopose3d_layouts_and_errors(tmp_path):
    h36m = source_points(4, 17)
    path = write_vp3d_custom(tmp_path / "h.npz", {"a": h36m}, layout="h36m",
                             symmetry=([4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]))
    np.testing.assert_allclose(load_keypoints(path).pixels, h36m, atol=1e-3)  # h36m: one to one
    two = write_vp3d_custom(tmp_path / "two.npz", {"a.mp4": h36m, "b.mp4": h36m})
    with pytest.raises(ValueError, match=r"two.npz: holds 2 2D tracks \(a.mp4/custom, b.mp4/custom\)"):
        load_keypoints(two)
    wrong = write_vp3d_custom(tmp_path / "wrong.npz", {"a": h36m}, layout="coco",
                              symmetry=([4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]))
    with pytest.raises(ValueError, match="wrong.npz: metadata layout_name 'coco' but keypoints_symmetry"):
        load_keypoints(wrong)


class _Payload:
    def __init__(self, folder: Path) -> None:
        self.command = f"touch {folder / 'pwned'}"

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickled_npz_layouts_never_run_code(tmp_path):
    np.savez(tmp_path / "vp.npz", positions_2d=_object({"v": {"custom": [_Payload(tmp_path)]}}),
             metadata=_object({"layout_name": "coco"}))
    np.savez(tmp_path / "d2.npz", boxes=_object([[[], _Payload(tmp_path)]]),
             keypoints=_object([[[], _Payload(tmp_path)]]), metadata=_object({"w": 9, "h": 9}))
    for name, fmt in (("vp.npz", "videopose3d"), ("d2.npz", "detectron2")):
        assert detect_format(tmp_path / name) == fmt  # detection lists names only
        with pytest.raises(ValueError, match=f"{name}: cannot read .*refused"):
            load_keypoints(tmp_path / name, image_size=(640, 480))
    assert not (tmp_path / "pwned").exists()


# ---- Detectron2 -------------------------------------------------------------------------------------------


def _per_class(values: list) -> np.ndarray:
    """Detectron1-style per-frame class lists [[], class-1 value], as an object array (F, 2)."""
    array = np.empty((len(values), 2), dtype=object)
    for f, value in enumerate(values):
        array[f, 0], array[f, 1] = [], value
    return array


def write_detectron2_npz(path: Path, people: list[list[np.ndarray]], box_scores: list[list[float]],
                         prob: float = 0.16) -> Path:
    """infer_video_d2.py output: per frame boxes (N, 5) and keypoints (N, 4, 17) x, y, logit, prob."""
    boxes, keypoints = [], []
    for frame, scores in zip(people, box_scores, strict=True):
        if not frame:
            boxes.append([])
            keypoints.append([])
            continue
        boxes.append(np.array([[0, 0, 10, 10, s] for s in scores], dtype=np.float32))
        keypoints.append(np.stack([np.stack([p[:, 0], p[:, 1], np.zeros(17), np.full(17, prob)])
                                   for p in frame]).astype(np.float32))
    np.savez_compressed(path, boxes=_per_class(boxes), segments=np.array([None] * len(people), dtype=object),
                        keypoints=_per_class(keypoints), metadata=_object({"w": 640, "h": 480}))
    return path


def test_detectron2_npz_best_box_and_its_own_threshold(tmp_path):
    main, other = _hand_points(4, 17), source_points(4, 17, seed=7)
    people = [[other[0], main[0]], [], [main[2]], [main[3], other[3]]]
    path = write_detectron2_npz(tmp_path / "clip.mp4.npz", people, [[0.5, 0.99], [], [0.9], [0.97, 0.6]])
    assert detect_format(path) == "detectron2"
    kp = load_keypoints(path)  # size from metadata, threshold 0.05 (scores are about 0.16)
    assert kp.image_size == (640, 480) and kp.min_confidence == 0.05 and kp.source_format == "detectron2"
    expected = expected_h36m(main, COCO)
    np.testing.assert_allclose(kp.pixels[[0, 2, 3]], expected[[0, 2, 3]], atol=1e-3)  # highest box score
    _check_hand_values(kp.pixels)
    assert kp.filled[1].all() and not kp.filled[[0, 2, 3]].any()  # frame 1: nobody, interpolated
    np.testing.assert_allclose(kp.pixels[1], (expected[0] + expected[2]) / 2, atol=1e-3)
    with pytest.raises(ValueError, match="clip.mp4.npz: no keypoint with confidence >= 0.3"):
        load_keypoints(path, min_confidence=0.3)  # an explicit threshold wins


def test_detectron2_coco_results_json_at_the_default_threshold(tmp_path):
    pts = source_points(4, 17)
    entries = [{"image_id": f, "category_id": 1, "bbox": [0, 0, 9, 9], "score": 0.99,
                "keypoints": np.c_[pts[f], np.full(17, 0.16)].reshape(-1).tolist()} for f in range(4)]
    path = tmp_path / "coco_instances_results.json"
    path.write_text(json.dumps(entries))
    kp = load_keypoints(path, image_size=(640, 480))
    assert kp.min_confidence == 0.05 and not kp.filled.any()
    np.testing.assert_allclose(kp.pixels, expected_h36m(pts, COCO), atol=1e-3)
    for entry in entries:  # the same scores from AlphaPose (box + idx): its scale, 0.3
        entry.pop("bbox")
        entry.update(box=[0, 0, 9, 9], idx=[0.0])
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="no keypoint with confidence >= 0.3"):
        load_keypoints(path, image_size=(640, 480))


# ---- MMPose folder, OpenPose variants, Halpe-136 -------------------------------------------------------


def test_mmpose_folder_of_one_json_per_image(tmp_path):
    pts = _hand_points(3, 17)
    folder = tmp_path / "predictions"
    folder.mkdir()
    for f, number in enumerate((10, 11, 13)):  # image 12 has no file: an empty frame
        instances = [{"keypoints": pts[f].tolist(), "keypoint_scores": [0.9] * 17, "bbox": [[0, 0, 9, 9]],
                      "bbox_score": 0.9}]
        (folder / f"{number:06d}.json").write_text(json.dumps(instances))
    (folder / "000014.json").write_text("[]")  # nobody in image 14
    assert detect_format(folder) == "coco"
    kp = load_keypoints(folder, image_size=(640, 480))
    assert kp.frame_ids.tolist() == [10, 11, 12, 13, 14] and kp.first_frame == 10
    expected = expected_h36m(pts, COCO)
    np.testing.assert_allclose(kp.pixels[[0, 1, 3]], expected, atol=1e-3)
    assert kp.filled[[2, 4]].all() and not kp.filled[[0, 1, 3]].any()
    _check_hand_values(kp.pixels)


def test_openpose_1_1_pose_keypoints(tmp_path):
    pts = source_points(3, 25)
    folder = write_openpose(tmp_path / "op", pts, [0, 1, 2])
    for file in folder.iterdir():
        doc = json.loads(file.read_text())
        doc["version"] = 1.1
        doc["people"] = [{"pose_keypoints": p["pose_keypoints_2d"]} for p in doc["people"]]
        file.write_text(json.dumps(doc))
    assert detect_format(folder) == "openpose"
    np.testing.assert_allclose(load_keypoints(folder, image_size=(640, 480)).pixels,
                               expected_h36m(pts, BODY25), atol=1e-3)


@pytest.mark.parametrize("scale", [3, 4])
def test_openpose_keypoint_scale_is_detected_and_scaled(tmp_path, caplog, scale):
    size = np.array([640.0, 480.0])
    pts = source_points(3, 25) * [0.9, 0.8]  # inside 640 x 480
    scaled = pts / size if scale == 3 else pts / size * 2 - 1
    folder = tmp_path / "op"
    folder.mkdir()
    for f in range(3):
        points = np.c_[scaled[f], np.full(25, 0.8)]
        if f == 1:  # right wrist not found: (0, 0, 0), or (-1, -1, 0) after --keypoint_scale 4
            points[4] = [0.0, 0.0, 0.0] if scale == 3 else [-1.0, -1.0, 0.0]
        doc = {"people": [{"pose_keypoints_2d": points.reshape(-1).tolist()}]}
        (folder / f"v_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="op: the image size is not stored"):
        load_keypoints(folder)  # refused without a size to scale with
    kp = load_keypoints(folder, image_size=(640, 480))
    assert f"--keypoint_scale {scale}" in caplog.text
    expected = expected_h36m(pts, BODY25)
    np.testing.assert_allclose(kp.pixels[[0, 2]], expected[[0, 2]], atol=1e-2)
    rwrist = H36M.index("RWrist")
    assert kp.filled[1, rwrist] and kp.filled.sum() == 1


def test_halpe_136(tmp_path):
    pts = source_points(3, 136)
    path = write_coco_results(tmp_path / "alphapose-results.json", pts, [0, 1, 2])
    assert detect_format(path) == "halpe"
    kp = load_keypoints(path, image_size=(640, 480))
    np.testing.assert_allclose(kp.pixels, expected_h36m(pts[:, :26], HALPE), atol=1e-3)
    assert kp.source_format == "halpe"


# ---- COCO annotations and PoseFlow (track ids kept) ------------------------------------------------------


def _annotations(pts: np.ndarray, names: list[str], image_ids: list[int]) -> dict:
    images = [{"id": i, "file_name": name, "width": 640, "height": 480}
              for i, name in zip(image_ids, names, strict=True)]
    annotations = []
    for f, frame in enumerate(pts):
        if f == 2:
            continue  # image without a person
        v = np.full(17, 2.0)
        if f == 1:
            v[9] = 0.0  # left wrist not labelled
        annotations.append({"id": 100 + f, "image_id": image_ids[f], "category_id": 1, "iscrowd": 0,
                            "num_keypoints": int((v > 0).sum()), "track_id": 4,
                            "keypoints": np.c_[frame, v].reshape(-1).tolist()})
    annotations.append({"id": 99, "image_id": image_ids[0], "category_id": 1, "num_keypoints": 0,
                        "keypoints": [0] * 51})  # nothing labelled: skipped
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def test_coco_keypoint_annotations(tmp_path):
    pts = _hand_points(4, 17)
    path = tmp_path / "person_keypoints_val.json"
    path.write_text(json.dumps(_annotations(pts, [f"clip/{n:06d}.jpg" for n in (5, 6, 7, 8)],
                                            [397133, 37777, 252219, 87038])))
    assert detect_format(path) == "coco"
    kp = load_keypoints(path)  # width and height of the images
    assert kp.image_size == (640, 480) and kp.frame_ids.tolist() == [5, 6, 7, 8]
    expected = expected_h36m(pts, COCO)
    np.testing.assert_allclose(kp.pixels[[0, 3]], expected[[0, 3]], atol=1e-3)
    _check_hand_values(kp.pixels)
    assert kp.filled[2].all() and kp.filled[1, LWRIST] and kp.filled[1].sum() == 1
    assert [p.track_id for people in READERS["coco"](path).frames for p in people] == [4, 4, 4]
    # file names that repeat (two videos) -> frames by image id
    path.write_text(json.dumps(_annotations(pts, ["a/0.jpg", "b/0.jpg", "a/1.jpg", "b/1.jpg"], [1, 2, 3, 4])))
    assert load_keypoints(path).frame_ids.tolist() == [1, 2, 3, 4]


def test_poseflow_json_keeps_track_ids(tmp_path):
    pts, other = source_points(3, 17), source_points(3, 17, seed=2)
    doc = {f"{f}.jpg": [{"keypoints": np.c_[other[f], np.full(17, 0.9)].reshape(-1).tolist(), "scores": 1.0,
                         "idx": 2},
                        {"keypoints": np.c_[pts[f], np.full(17, 0.9)].reshape(-1).tolist(), "scores": 3.0,
                         "idx": 1}] for f in range(3)}
    path = tmp_path / "alphapose-results-forvis-tracked.json"
    path.write_text(json.dumps(doc))
    assert detect_format(path) == "coco"
    np.testing.assert_allclose(load_keypoints(path, image_size=(640, 480), person=1).pixels,
                               expected_h36m(pts, COCO), atol=1e-3)  # track 1 (also the 2nd listed)
    det = READERS["coco"](path)
    assert det.frame_ids == [0, 1, 2] and [[p.track_id for p in ps] for ps in det.frames] == [[2, 1]] * 3


def test_alphapose_idx_without_tracking_is_no_track_id(tmp_path):
    pts = source_points(2, 17)
    entries = [{"image_id": "0.jpg", "category_id": 1, "score": 2.0, "box": [0, 0, 9, 9], "idx": [0.0],
                "keypoints": np.c_[p, np.ones(17)].reshape(-1).tolist()} for p in pts]  # two people
    entries.append({**entries[0], "image_id": "1.jpg"})
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(entries))
    assert all(p.track_id is None for ps in READERS["coco"](path).frames for p in ps)
    for entry, track in zip(entries, (7, 3, 7), strict=True):  # --pose_track: ids kept
        entry["idx"] = track
    path.write_text(json.dumps(entries))
    assert [[p.track_id for p in ps] for ps in READERS["coco"](path).frames] == [[7, 3], [7]]


# ---- MediaPipe csv dumps ---------------------------------------------------------------------------------


def test_mediapipe_wide_and_long_csv_dumps(tmp_path):
    lm = mediapipe_landmarks(3)
    expected = expected_h36m(lm[..., :2] * [640.0, 360.0], BLAZE)
    header = ["frame"] + [f"L{j}_{c}" for j in range(33) for c in ("x", "y", "z", "visibility")]
    rows = [[n, *lm[f].reshape(-1)] for f, n in zip(range(3), (3, 4, 6), strict=True)]  # frame 5 absent
    wide = tmp_path / "wide.csv"
    wide.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    assert detect_format(wide) == "mediapipe"
    kp = load_keypoints(wide, image_size=(640, 360))
    assert kp.frame_ids.tolist() == [3, 4, 5, 6] and kp.filled[2].all() and not kp.filled[[0, 1, 3]].any()
    np.testing.assert_allclose(kp.pixels[[0, 1, 3]], expected, atol=1e-3)
    long = tmp_path / "long.csv"
    long.write_text("Frame,LandmarkID,X,Y\n" + "".join(f"{f},{j},{lm[f, j, 0]},{lm[f, j, 1]}\n"
                                                      for f in range(3) for j in range(33)))
    assert detect_format(long) == "mediapipe"
    np.testing.assert_allclose(load_keypoints(long, image_size=(640, 360)).pixels, expected, atol=1e-3)


# ---- frame numbers, normalised coordinates ---------------------------------------------------------------


def test_first_frame_and_frame_ids_are_kept(tmp_path):
    pts = source_points(4, 17)
    kp = load_keypoints(write_coco_results(tmp_path / "r.json", pts, [10, 11, 12, 13]), image_size=(640, 480))
    assert kp.first_frame == 10 and kp.frame_ids.tolist() == [10, 11, 12, 13]
    sparse = load_keypoints(write_coco_results(tmp_path / "s.json", pts, [7, 3, 5_000_000, 9]),
                            image_size=(640, 480))
    assert sparse.frame_ids.tolist() == [3, 7, 9, 5_000_000]
    kp.save(tmp_path / "kp.npz")  # the plain npz keeps them
    assert load_keypoints(tmp_path / "kp.npz").frame_ids.tolist() == [10, 11, 12, 13]
    save_keypoints_npz(tmp_path / "plain.npz", pts, (640, 480))
    assert load_keypoints(tmp_path / "plain.npz").first_frame == 0
    np.savez(tmp_path / "bad.npz", keypoints=pts, image_size=np.array([640, 480]), frame_ids=[3, 2, 1, 0])
    with pytest.raises(ValueError, match="bad.npz: 'frame_ids' must be"):
        load_keypoints(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="r.json: frame number 1.5"):
        load_keypoints(write_coco_results(tmp_path / "r.json", pts, [0, 1.5, 2, 3]), image_size=(640, 480))


def test_normalised_coordinates_in_a_pixel_format_are_refused(tmp_path):
    path = write_coco_results(tmp_path / "norm.json", source_points(3, 17) / 1000.0, [0, 1, 2])
    with pytest.raises(ValueError, match=r"norm.json: every keypoint lies within \[-1, 1\]"):
        load_keypoints(path, image_size=(640, 480))
