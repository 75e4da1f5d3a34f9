"""Identity tracking of several people (``data/tracking.py``) and its use by ``load_keypoints``.

Synthetic people are the body prior's template pose (``body_prior.TEMPLATE_2D``, by joint name for the
tools' layouts) scaled to ~170 px torsos, walking and swinging their arms; files are written in the real
tools' layouts (OpenPose folders, MMPose predictions, AlphaPose/PoseFlow results with ``idx``), with the
people listed in an order that swaps every few frames as detector scores do.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from posediffusion.data.body_prior import TEMPLATE_2D, body_scale
from posediffusion.data.keypoints import load_keypoints, load_tracks
from posediffusion.data.tracking import (
    TrackerConfig,
    associate,
    file_id_tracks,
    find_cuts,
    track_jumps,
    usable_file_ids,
)
from tests.data.test_keypoints import BODY25, COCO, HALPE  # the tools' joint orders, defined once

SCALE = 0.35  # template mm -> px: torso 490 mm -> ~171 px
TORSO = 490.0 * SCALE
SIZE = (1280, 720)

#: Template position (mm, u right, v down, facing the camera) of every named keypoint the layouts use.
NAMED = {
    "nose": (0, -611), "l_eye": (30, -640), "r_eye": (-30, -640), "l_ear": (70, -620), "r_ear": (-70, -620),
    "l_sho": (151, -490), "r_sho": (-151, -490), "l_elb": (151, -212), "r_elb": (-151, -212),
    "l_wri": (151, 39), "r_wri": (-151, 39), "l_hip": (132, 0), "r_hip": (-132, 0), "l_knee": (132, 442),
    "r_knee": (-132, 442), "l_ank": (132, 896), "r_ank": (-132, 896), "neck": (0, -490), "mid_hip": (0, 0),
    "head": (0, -726), "hip": (0, 0), "l_btoe": (170, 940), "l_stoe": (110, 940), "l_heel": (132, 920),
    "r_btoe": (-170, 940), "r_stoe": (-110, 940), "r_heel": (-132, 920),
}


def walker(frames: int, x0: float, vx: float, y: float = 420.0, phase: float = 0.0, seed: int = 0) -> dict:
    """name -> (F, 2) pixels of a person walking along x at ``vx`` px/frame, arms swinging, 1 px noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    out = {}
    for name, (u, v) in NAMED.items():
        pos = np.concatenate([x0 + vx * t + SCALE * u + 0 * t, y + SCALE * v + 0 * t], axis=1).astype(float)
        if name.endswith(("wri", "elb")):
            pos[:, 0] += SCALE * (120 if "wri" in name else 50) * np.sin(0.3 * t[:, 0] + phase)
        out[name] = pos + rng.normal(0, 1.0, pos.shape)
    return out


def layout(person: dict, names: list[str], frame: int) -> np.ndarray:
    return np.array([person[n][frame] for n in names])


def h36m_pelvis(person: dict, frame: int) -> np.ndarray:
    return person["mid_hip"][frame]


def order(frame: int, people: list, every: int = 3) -> list:
    """The people in detector-score order: rotated every ``every`` frames."""
    k = (frame // every) % len(people)
    return people[k:] + people[:k]


def write_openpose(folder: Path, people_per_frame: list[list[np.ndarray]]) -> Path:
    """OpenPose --write_json folder: (K, 2) pixel arrays per person per frame, confidence 0.8."""
    folder.mkdir()
    for f, people in enumerate(people_per_frame):
        doc = {"version": 1.3, "people": [
            {"person_id": [-1], "pose_keypoints_2d": np.concatenate([p, np.full((len(p), 1), 0.8)], 1)
             .reshape(-1).tolist(), "face_keypoints_2d": []} for p in people]}
        (folder / f"clip_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    return folder


def write_mmpose(path: Path, people_per_frame: list[list[np.ndarray]]) -> Path:
    """MMPose inferencer video file: [{"frame_id", "instances": [...]}], bbox_score varying."""
    frames = [{"frame_id": f, "instances": [
        {"keypoints": p.tolist(), "keypoint_scores": [0.9] * len(p), "bbox": [[0, 0, 9, 9]],
         "bbox_score": 0.9 - 0.1 * i} for i, p in enumerate(people)]}
        for f, people in enumerate(people_per_frame)]
    path.write_text(json.dumps(frames))
    return path


def write_alphapose(path: Path, people_per_frame: list[list[tuple[np.ndarray, int]]]) -> Path:
    """AlphaPose alphapose-results.json: one entry per person, with ``idx`` and ``box``."""
    entries = []
    for f, people in enumerate(people_per_frame):
        for points, idx in people:
            flat = np.concatenate([points, np.full((len(points), 1), 0.85)], 1).reshape(-1).tolist()
            entries.append({"image_id": f"{f}.jpg", "category_id": 1, "keypoints": flat, "score": 2.5,
                            "box": [0, 0, 10, 10], "idx": idx})
    path.write_text(json.dumps(entries))
    return path


def assert_no_jump(kp, allowed: tuple[int, ...] = ()) -> None:
    """The track's pelvis never moves more than a torso length between consecutive measured frames."""
    pelvis = kp.pixels[:, 0]
    measured = ~kp.filled[:, 0]
    frames = np.flatnonzero(measured)
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        if b in allowed:
            continue
        step = np.linalg.norm(pelvis[b] - pelvis[a]) / (b - a)
        assert step <= TORSO, f"pelvis jumps {step:.0f} px between frames {a} and {b}"


def follows(kp, person: dict, frames) -> bool:
    return bool(np.all(np.linalg.norm(kp.pixels[frames, 0] - np.array([person["mid_hip"][f] for f in frames]),
                                      axis=-1) < 10))


# ---- the tracker on arrays -------------------------------------------------------------------------------


def _arrays(people_per_frame: list[list[np.ndarray]]):
    poses = [np.array(people, dtype=float).reshape(-1, 17, 2) for people in people_per_frame]
    valid = [np.ones(p.shape[:2], bool) for p in poses]
    return poses, valid, [body_scale(p, v) for p, v in zip(poses, valid, strict=True)]


def _h36m(person: dict, frame: int) -> np.ndarray:
    return TEMPLATE_2D * SCALE + (person["mid_hip"][frame] - 0)[None]


def test_crossing_people_in_swapping_order_keep_their_identity():
    frames = 60
    a, b = walker(frames, 200, 9), walker(frames, 800, -9, seed=1)  # they cross near frame 33
    poses, valid, scales = _arrays([[_h36m(p, f) for p in order(f, [a, b])] for f in range(frames)])
    tracks = associate(poses, valid, scales)
    assert tracks.ids == [0, 1] and tracks.counts() == {0: frames, 1: frames} and tracks.cuts == []
    for track, person in ((0, a), (1, b)):  # track 0 appeared on the left
        x = [poses[f][tracks.detection(f, track)][0, 0] for f in range(frames)]
        np.testing.assert_allclose(x, person["mid_hip"][:, 0], atol=5)


def test_file_ids_are_used_only_when_unique_per_frame():
    assert usable_file_ids([[1, 2], [2, 1], [1]])
    assert not usable_file_ids([[0, 0], [0]])  # AlphaPose without tracking: the same idx for everybody
    assert not usable_file_ids([[1, None]])
    tracks = file_id_tracks([[4, 7], [7]], [np.array([True, True]), np.array([False])])
    assert tracks.source == "file" and tracks.ids == [4, 7] and tracks.labels[1].tolist() == [-1]


def test_cut_joins_one_person_and_reports_a_crowd_cut():
    one = [[_h36m(walker(20, 200, 3), f)] for f in range(10)] + [[_h36m(walker(20, 900, 3), f)]
                                                                   for f in range(10, 20)]
    tracks = associate(*_arrays(one))
    assert tracks.cuts == [10] and tracks.ids == [0] and tracks.joins == [(0, 10)]
    a, b, c, d = (walker(20, x, 2, seed=i) for i, x in enumerate((150, 450, 800, 1100)))
    crowd = [[_h36m(a, f), _h36m(b, f)] if f < 10 else [_h36m(c, f), _h36m(d, f)] for f in range(20)]
    tracks = associate(*_arrays(crowd))
    assert tracks.cuts == [10] and tracks.ids == [0, 1, 2, 3] and tracks.joins == []
    assert find_cuts(tracks) == [10]


def test_leaving_and_reentering():
    frames = 60
    a, b = walker(frames, 150, 4), walker(frames, 900, 0, seed=1)
    gone = range(20, 40)  # a is out of view; b stays
    people = [[_h36m(b, f)] + ([] if f in gone else [_h36m(a, f)]) for f in range(frames)]
    tracks = associate(*_arrays(people))
    assert sorted(tracks.counts().values()) == [20, 20, 60]  # a's return is a new track: b was in view
    alone = [[] if f in gone else [_h36m(a, f)] for f in range(frames)]
    tracks = associate(*_arrays(alone))
    assert tracks.counts() == {0: 40} and tracks.joins == [(0, 40)]  # nobody else: the same person
    short = [[] if f in range(20, 24) else [_h36m(a, f)] for f in range(frames)]
    assert associate(*_arrays(short)).joins == []  # a 4-frame gap is bridged, not joined


def test_overlapping_people_that_separate_are_ambiguous():
    frames = 30
    a, b = walker(frames, 500, 0), walker(frames, 504, 0, seed=1)
    people = [[_h36m(a, f), _h36m(b, f)] for f in range(15)] + [[] for _ in range(3)]
    shift = np.array([70.0, 0.0])
    people += [[_h36m(a, f) - shift, _h36m(b, f) + shift] for f in range(18, frames)]
    tracks = associate(*_arrays(people))
    assert tracks.ambiguous and 18 in tracks.ambiguous[0] and 18 in tracks.ambiguous[1]


def test_no_association_jumps_more_than_a_torso():
    rng = np.random.default_rng(3)
    people = [[_h36m(walker(1, rng.uniform(100, 1100), 0, seed=f), 0) for _ in range(3)] for f in range(40)]
    tracks = associate(*_arrays(people), config=TrackerConfig(max_gap=3))
    for t in tracks.ids:
        frames = tracks.frames(t)
        pix = np.full((40, 17, 2), np.nan)
        ok = np.zeros((40, 17), bool)
        for f in frames:
            pix[f], ok[f] = people[f][tracks.detection(f, t)], True
        allowed = {f for track, f in tracks.joins if track == t}
        assert set(track_jumps(pix, ok, TORSO)) <= allowed


# ---- files in the tools' layouts -------------------------------------------------------------------------


def test_openpose_two_crossing_people_swapping_order(tmp_path, caplog):
    frames = 60
    a, b = walker(frames, 200, 9), walker(frames, 800, -9, seed=1, phase=1.0)
    folder = write_openpose(tmp_path / "op", [[layout(p, BODY25, f) for p in order(f, [a, b])]
                                              for f in range(frames)])
    kp = load_keypoints(folder, image_size=SIZE)
    assert kp.tracks == 2 and not kp.filled.any()
    assert_no_jump(kp)
    assert follows(kp, a, range(frames)) or follows(kp, b, range(frames))
    assert "2 people" in caplog.text and "--all-people" in caplog.text
    left, right = load_keypoints(folder, image_size=SIZE, person=0), load_keypoints(folder, image_size=SIZE,
                                                                                   person=1)
    assert follows(left, a, range(frames)) and follows(right, b, range(frames))  # numbered left to right
    assert_no_jump(left)
    assert_no_jump(right)
    with pytest.raises(ValueError, match=r"op: --person 2: no such person.*2 track\(s\) \(ids 0, 1\)"):
        load_keypoints(folder, image_size=SIZE, person=2)


def test_mmpose_three_dancers_default_is_the_longest_track(tmp_path):
    frames = 50
    a = walker(frames, 300, 3)
    b = walker(frames, 640, 0, seed=1)
    c = walker(frames, 1000, -3, seed=2)
    people = [[layout(p, COCO, f) for p in order(f, [a, b, c] if f >= 5 else [a, c], every=2)]
              for f in range(frames)]  # b arrives in frame 5
    kp = load_keypoints(write_mmpose(tmp_path / "dance.json", people), image_size=SIZE)
    assert kp.tracks == 3 and kp.track_id in (0, 1)
    assert_no_jump(kp)
    tracks = load_tracks(tmp_path / "dance.json", image_size=SIZE)
    assert [t.track_id for t in tracks] == [0, 1, 2]
    assert follows(tracks[0], a, range(frames)) and follows(tracks[1], c, range(frames))
    assert follows(tracks[2], b, range(5, frames)) and tracks[2].filled[:5].all()
    for track in tracks:
        assert_no_jump(track)


def test_alphapose_track_ids_select_the_person(tmp_path):
    frames = 40
    a, b = walker(frames, 200, 9), walker(frames, 800, -9, seed=1)
    people = [[(layout(p, HALPE, f), idx) for p, idx in order(f, [(a, 3), (b, 7)])] for f in range(frames)]
    path = write_alphapose(tmp_path / "alphapose-results.json", people)
    kp = load_keypoints(path, image_size=SIZE, person=7)
    assert kp.track_id == 7 and follows(kp, b, range(frames))
    assert_no_jump(kp)
    assert follows(load_keypoints(path, image_size=SIZE, person=3), a, range(frames))
    with pytest.raises(ValueError, match=r"--person 0: no such person.*ids 3, 7"):
        load_keypoints(path, image_size=SIZE, person=0)


def test_alphapose_without_tracking_has_one_idx_for_all_and_is_associated(tmp_path):
    frames = 40
    a, b = walker(frames, 200, 9), walker(frames, 800, -9, seed=1)
    people = [[(layout(p, HALPE, f), 0) for p in order(f, [a, b])] for f in range(frames)]
    path = write_alphapose(tmp_path / "alphapose-results.json", people)
    tracks = load_tracks(path, image_size=SIZE)
    assert [t.track_id for t in tracks] == [0, 1]
    assert follows(tracks[0], a, range(frames)) and follows(tracks[1], b, range(frames))


def test_person_leaving_and_reentering_in_a_file(tmp_path):
    frames = 60
    a, b = walker(frames, 150, 4), walker(frames, 900, 0, seed=1)
    people = [[layout(p, BODY25, f) for p in order(f, [a, b] if not 20 <= f < 40 else [b])]
              for f in range(frames)]
    folder = write_openpose(tmp_path / "op", people)
    kp = load_keypoints(folder, image_size=SIZE)  # b is in every frame
    assert follows(kp, b, range(frames)) and not kp.filled.any()
    first = load_keypoints(folder, image_size=SIZE, person=0)  # a, until it leaves
    assert follows(first, a, range(20)) and first.filled[20:].all()
    assert_no_jump(first)


def test_cut_in_a_single_person_file_is_reported_and_continued(tmp_path, caplog):
    frames = 30
    a, far = walker(frames, 200, 3), walker(frames, 1000, 3, seed=1)
    people = [[layout(a if f < 15 else far, BODY25, f)] for f in range(frames)]
    kp = load_keypoints(write_openpose(tmp_path / "op", people), image_size=SIZE)
    assert kp.tracks == 1 and not kp.filled.any()
    assert "cut" in caplog.text and "frame 15" in caplog.text
    assert_no_jump(kp, allowed=(15,))


def test_overlap_warns_that_identity_is_ambiguous(tmp_path, caplog):
    a, b = walker(30, 500, 0), walker(30, 504, 0, seed=1)
    shift = np.array([70.0, 0.0])
    left, right = {k: v - shift for k, v in a.items()}, {k: v + shift for k, v in b.items()}
    people = [[layout(a, COCO, f), layout(b, COCO, f)] for f in range(15)] + [[] for _ in range(3)]
    people += [[layout(left, COCO, f), layout(right, COCO, f)] for f in range(18, 30)]
    load_keypoints(write_mmpose(tmp_path / "p.json", people), image_size=SIZE)
    assert "ambiguous" in caplog.text
