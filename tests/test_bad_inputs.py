"""Every bad input of the hardening issue, through the command line, in one table.

Each case runs ``posediffusion.cli.main`` in-process and must exit with code 2, print exactly one line on
stderr that names the file or flag at fault, print no traceback, and leave the folder as it was (no output,
no temporary file). Cases that share a setup share the files written by one fixture; most fail before any
model is loaded, so the table runs in a few seconds.

Inputs that are no longer errors but were harmful before (sparse frame numbers, one wild joint, a symlinked
output, a keypoint npz without ``image_size`` plus ``--image-size``) are checked at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from posediffusion.cli import main
from posediffusion.data.keypoints import save_keypoints_npz
from tests.data.test_bvh import CHAIN as BVH_CHAIN
from tests.helpers import write_synthetic_mocap

FAST = ["--hypotheses", "1", "--steps", "1"]
MARKER = "pwned_by_a_pickle"


def _track(frames: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    track = rng.uniform(300, 700, size=(1, 17, 2)) + rng.normal(0, 2, size=(frames, 17, 2))
    return track.astype(np.float32)


class _Payload:
    """Pickles as a call of os.system: loading it with plain pickle would create the marker file."""

    def __init__(self, folder: Path) -> None:
        self.command = f"touch {folder / MARKER}"

    def __reduce__(self):
        return (os.system, (self.command,))


def _object(value: object) -> np.ndarray:
    array = np.empty((), dtype=object)
    array[()] = value
    return array


def _write_gt_dir(folder: Path, valid: list[int]) -> Path:
    """A 3DHP test folder with one sequence TS1 (annot_data.mat as h5py reads MATLAB v7.3), millimetres."""
    (folder / "TS1").mkdir(parents=True)
    n = len(valid)
    pose = np.random.default_rng(1).normal(scale=300.0, size=(n, 17, 3)) + [0.0, 0.0, 4000.0]
    with h5py.File(folder / "TS1" / "annot_data.mat", "w") as fh:
        fh["annot2"] = np.zeros((n, 1, 17, 2))
        fh["annot3"] = pose[:, None]
        fh["univ_annot3"] = pose[:, None]
        fh["valid_frame"] = np.asarray(valid, dtype=np.float64)[:, None]
        fh["activity_annotation"] = np.ones((n, 1))
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """Every input file of the table, written once: name -> path."""
    root = tmp_path_factory.mktemp("bad_inputs")
    f: dict[str, Path] = {"root": root, "checkpoint": tiny_checkpoint}
    track = _track()
    save_keypoints_npz(root / "kp.npz", track, (1000, 1000))
    f["kp"] = root / "kp.npz"
    f["empty_npz"] = root / "empty.npz"
    f["empty_npz"].write_bytes(b"")
    f["truncated_npz"] = root / "truncated.npz"
    f["truncated_npz"].write_bytes(f["kp"].read_bytes()[:300])
    np.savez(root / "evil_kp.npz", keypoints=_object(_Payload(root)), image_size=np.array([1000, 1000]))
    f["evil_kp"] = root / "evil_kp.npz"
    f["coco"] = root / "coco.json"
    f["coco"].write_text(json.dumps([{"image_id": i, "category_id": 1, "score": 0.9,
                                      "keypoints": np.c_[track[i], np.ones(17)].reshape(-1).tolist()}
                                     for i in range(len(track))]))
    rows = ["frame,joint,x,y"] + [f"{fr},{j},500,500" for fr in (0, "nan") for j in range(17)]
    f["nan_frame_csv"] = root / "nan_frame.csv"
    f["nan_frame_csv"].write_text("\n".join(rows) + "\n")
    np.savez(root / "scaled.npz", keypoints=track * 1e6, image_size=np.array([1000, 1000]))
    f["scaled"] = root / "scaled.npz"
    np.savez(root / "huge.npz", keypoints=np.full((12, 17, 2), 1e40), image_size=np.array([1000, 1000]))
    f["huge"] = root / "huge.npz"
    np.savez(root / "float_size.npz", keypoints=track, image_size=np.array([1920.5, 1080.0]))
    f["float_size"] = root / "float_size.npz"
    np.savez(root / "no_size.npz", keypoints=track)
    f["no_size"] = root / "no_size.npz"
    for name, fps in (("fps0", 0.0), ("fps_negative", -5.0), ("fps_nan", np.nan)):
        np.savez(root / f"{name}.npz", keypoints=track, image_size=np.array([1000, 1000]), fps=fps)
        f[name] = root / f"{name}.npz"
    f["a_file"] = root / "a_file.txt"
    f["a_file"].write_text("not a folder")
    f["a_folder"] = root / "a_folder"
    f["a_folder"].mkdir()
    os.symlink(root / "out.npz", root / "same.json")  # a link to the --out of LIFT: one file, two flags
    f["same_json"] = root / "same.json"
    os.mkfifo(root / "fifo.npz")
    f["fifo"] = root / "fifo.npz"
    # VideoPose3D layout whose 2D dict hides a payload; the 3D file is a normal one
    vp = root / "vp"
    vp.mkdir()
    np.savez_compressed(vp / "data_3d_evil.npz",
                        positions_3d=_object({"S9": {"Walk": np.zeros((5, 17, 3), np.float32)}}))
    np.savez_compressed(vp / "data_2d_evil_gt.npz", positions_2d=_object({"S9": {"Walk": [_Payload(root)]}}),
                        metadata=_object({"num_joints": 17}))
    f["vp"] = vp
    # 3DHP scoring
    f["gt"] = _write_gt_dir(root / "gt", [1, 1, 1])
    f["gt_invalid"] = _write_gt_dir(root / "gt_invalid", [0, 0, 0])
    gt = np.random.default_rng(1).normal(scale=300.0, size=(3, 17, 3))
    np.savez(root / "pred_mm.npz", TS1=gt)
    f["pred_mm"] = root / "pred_mm.npz"
    np.savez(root / "pred_str.npz", TS1=np.array(["a", "b", "c"]))
    f["pred_str"] = root / "pred_str.npz"
    np.savez(root / "pred_m.npz", TS1=gt / 1000)
    f["pred_m"] = root / "pred_m.npz"
    np.savez(root / "pred_16.npz", TS1=gt[:, :16] / 1000)
    f["pred_16"] = root / "pred_16.npz"
    # mocap
    f["mocap"] = write_synthetic_mocap(root / "mocap.npz", motions=2, frames=10)
    metres = {k: v / 1000.0 for k, v in np.load(f["mocap"]).items()}
    np.savez(root / "mocap_m.npz", **metres)
    f["mocap_m"] = root / "mocap_m.npz"
    # BVH (prepare bvh): a two-joint chain that no rig preset fits, and two malformed files
    bvh_cases = {"odd_rig": BVH_CHAIN, "bvh_frames": BVH_CHAIN.replace("Frames: 2", "Frames: 3"),
                 "bvh_channel": BVH_CHAIN.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation")}
    for name, text in bvh_cases.items():
        f[name] = root / f"{name}.bvh"
        f[name].write_text(text)
    f["list_yaml"] = root / "list.yaml"
    f["list_yaml"].write_text("- 1\n- 2\n")
    # render
    pose = np.zeros((4, 17, 3), np.float32)
    pose[:, 1:, 1] = 0.5
    prediction = {"keypoints_2d": np.full((4, 17, 2), 500.0, np.float32), "pose_3d": pose,
                  "image_size": np.array([1000, 1000])}
    np.savez(root / "pred.npz", **prediction)
    f["pred"] = root / "pred.npz"
    np.savez(root / "pred_fps.npz", **prediction, fps=np.float32(-5))
    f["pred_fps"] = root / "pred_fps.npz"
    return f


@dataclass
class Case:
    """argv with {name} placeholders for ``files``; ``names`` must all appear in the one stderr line."""

    id: str
    argv: str
    names: tuple[str, ...]
    skip_if: bool = False


CUDA = torch.cuda.is_available()
LIFT = "lift {kp} --out {root}/out.npz " + " ".join(FAST)
CASES = [
    # 1. dataset and keypoint files never run code
    Case("pickled-keypoint-npz", "lift {evil_kp} --out {root}/out.npz", ("evil_kp.npz",)),
    Case("pickled-videopose3d-npz", "evaluate -c {checkpoint} -d evil --data-dir {vp} -k gt -ste S9 "
         "--out {root}/eval_out", ("data_2d_evil_gt.npz", "system")),
    # 2. outputs: only new paths or regular files
    Case("out-device", LIFT.replace("{root}/out.npz", "/dev/full"), ("--out", "/dev/full"),
         not Path("/dev/full").exists()),
    Case("out-fifo", LIFT.replace("{root}/out.npz", "{fifo}"), ("--out", "fifo.npz")),
    # 4. frame numbers from a file
    Case("csv-frame-nan", "lift {nan_frame_csv} --image-size 1000 1000 --out {root}/out.npz",
         ("nan_frame.csv",)),
    # 5. coordinates and image size
    Case("image-size-too-small", LIFT + " --image-size 1 1", ("--image-size", "kp.npz")),
    Case("coordinates-x1e6", "lift {scaled} --out {root}/out.npz", ("scaled.npz", "image_size")),
    # 6. every output target validated before anything is written
    Case("render-avi", LIFT + " --render {root}/out.avi", ("--render",)),
    Case("json-is-folder", LIFT + " --json {a_folder}", ("--json", "a_folder")),
    Case("csv-under-a-file", LIFT + " --csv {a_file}/out.csv", ("--csv", "a_file.txt")),
    Case("out-wrong-suffix", "lift {kp} --out {root}/out.txt", ("--out",)),
    Case("same-file-twice", LIFT + " --json {same_json}", ("--json", "same.json", "--out")),
    # 7. tracebacks before
    Case("empty-npz", "lift {empty_npz} --out {root}/out.npz", ("empty.npz",)),
    Case("truncated-npz", "lift {truncated_npz} --out {root}/out.npz", ("truncated.npz",)),
    Case("mediapipe-on-coco", "lift {coco} --format mediapipe --image-size 1000 1000 --out {root}/out.npz",
         ("coco.json",)),
    Case("out-is-folder", "lift {kp} --out {a_folder}", ("--out", "a_folder")),
    Case("out-under-a-file", "lift {kp} --out {a_file}/out.npz", ("--out", "a_file.txt")),
    Case("lift-device-cuda", LIFT + " --device cuda", ("--device",), CUDA),
    Case("lift-device-banana", LIFT + " --device banana", ("--device", "banana")),
    Case("demo-device-banana", "demo --out {root}/demo --no-render --device banana " + " ".join(FAST),
         ("--device", "banana")),
    Case("demo-device-cuda", "demo --out {root}/demo --no-render --device cuda", ("--device",), CUDA),
    Case("evaluate-device-banana", "evaluate -c {checkpoint} --device banana --out {root}/eval_out",
         ("--device", "banana")),
    Case("evaluate-device-cuda", "evaluate -c {checkpoint} --device cuda --out {root}/eval_out",
         ("--device", "cuda"), CUDA),
    Case("train-c-is-a-file", "train -c {a_file} --max-steps 1", ("-c/--checkpoint", "a_file.txt")),
    Case("evaluate-out-is-a-file", "evaluate -c {checkpoint} --out {a_file}", ("--out", "a_file.txt")),
    Case("eval-3dhp-out-is-a-file", "eval-3dhp --gt-dir {gt} --predictions {pred_mm} --out {a_file}",
         ("--out", "a_file.txt")),
    Case("prepare-out-is-a-file", "prepare mocap --input {mocap} --out {a_file}", ("--out", "a_file.txt")),
    Case("eval-3dhp-string-predictions", "eval-3dhp --gt-dir {gt} --predictions {pred_str} --out {root}/s",
         ("pred_str.npz", "TS1")),
    Case("eval-3dhp-16-joints-h36m", "eval-3dhp --gt-dir {gt} --predictions {pred_16} --out {root}/s "
         "--joint-order h36m --unit m", ("pred_16.npz", "--joint-order")),
    # 9. image size and fps
    Case("image-size-fraction-flag", LIFT + " --image-size 1920.5 1080", ("--image-size", "1920.5")),
    Case("image-size-fraction-file", "lift {float_size} --out {root}/out.npz", ("float_size.npz", "1920.5")),
    Case("fps-zero", "lift {fps0} --out {root}/out.npz", ("fps0.npz", "fps")),
    Case("fps-negative", "lift {fps_negative} --out {root}/out.npz", ("fps_negative.npz", "fps")),
    Case("fps-nan", "lift {fps_nan} --out {root}/out.npz", ("fps_nan.npz", "fps")),
    Case("no-image-size", "lift {no_size} --out {root}/out.npz", ("no_size.npz", "--image-size")),
    # 10. messages that say what is wrong
    Case("no-such-person", LIFT + " --person 5", ("kp.npz", "--person", "at most 1 person")),
    Case("coordinates-1e40", "lift {huge} --out {root}/out.npz", ("huge.npz",)),
    Case("prepare-seed-negative", "prepare mocap --input {mocap} --out {root}/prep --seed -1", ("--seed",)),
    # 12. eval-3dhp and prepare mocap units and empty scoring
    Case("eval-3dhp-no-valid-frames",
         "eval-3dhp --gt-dir {gt_invalid} --predictions {pred_mm} --out {root}/s",
         ("--gt-dir", "no valid frame")),
    Case("eval-3dhp-unit-m-on-mm", "eval-3dhp --gt-dir {gt} --predictions {pred_mm} --out {root}/s --unit m",
         ("pred_mm.npz", "--unit")),
    Case("prepare-metres-as-mm", "prepare mocap --input {mocap_m} --out {root}/prep",
         ("mocap_m.npz", "--unit m")),
    Case("eval-3dhp-unit-mm-on-m", "eval-3dhp --gt-dir {gt} --predictions {pred_m} --out {root}/s",
         ("pred_m.npz", "--unit m")),
    # prepare bvh: "FILE:LINE: what" for malformed files; an unknown rig lists what each preset lacks
    Case("prepare-bvh-frame-count", "prepare bvh {bvh_frames} --out {root}/prep --name b",
         ("bvh_frames.bvh:17:", "'Frames: 3' but 2 frame lines")),
    Case("prepare-bvh-unknown-channel", "prepare bvh {bvh_channel} --out {root}/prep --name b",
         ("bvh_channel.bvh:9:", "Wrotation")),
    Case("prepare-bvh-unknown-rig", "prepare bvh {odd_rig} --out {root}/prep --name b",
         ("odd_rig.bvh", "no mapping preset fits", "--mapping")),
    # render: the same output and fps rules
    Case("render-avi", "render {pred} --out {root}/out.avi", ("--out", "out.avi")),
    Case("render-to-device", "render {pred} --out /dev/full", ("--out", "/dev/full"),
         not Path("/dev/full").exists()),
    Case("render-out-is-folder", "render {pred} --out {a_folder}", ("--out", "a_folder")),
    Case("render-fps-in-file", "render {pred_fps} --out {root}/out.gif", ("pred_fps.npz", "fps")),
    Case("render-fps-flag", "render {pred} --out {root}/out.gif --fps nan", ("--fps",)),
    Case("render-empty-npz", "render {empty_npz} --out {root}/out.gif", ("empty.npz",)),
    # earlier hardening (already fixed), kept in the table
    Case("lift-hypotheses-0", "lift {kp} --out {root}/out.npz --hypotheses 0", ("--hypotheses",)),
    # metric scale: a height in centimetres or out of range, and contradicting scale flags
    Case("lift-height-in-cm", LIFT + " --height 180", ("--height 180", "metres", "1.80")),
    Case("lift-height-too-small", LIFT + " --height 0.2", ("--height 0.2", "between 0.5 and 2.5")),
    Case("lift-height-and-no-rescale", LIFT + " --height 1.8 --no-rescale", ("--no-rescale", "--height 1.8")),
    Case("lift-scale-height-without-height", LIFT + " --scale height", ("--scale height", "--height")),
    Case("train-yaml-list", "train --config {list_yaml} -c {root}/run --dry-run", ("list.yaml",)),
    Case("train-batch-0", "train -c {root}/run --dry-run -b 0", ("batch_size",)),
    Case("train-grad-clip-negative", "train -c {root}/run --dry-run --grad-clip -1", ("grad_clip",)),
    Case("train-lr-decay-0", "train -c {root}/run --dry-run -lrd 0", ("lr_decay",)),
    Case("train-empty-subjects", "train -c {root}/run --dry-run -str ,", ("subjects_train",)),
    Case("train-seed-2-70", f"train -c {{root}}/run --dry-run --seed {2**70}", ("seed",)),
]


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, files, capsys, monkeypatch):
    if case.skip_if:
        pytest.skip("not applicable on this machine")
    import posediffusion.evaluate

    def no_evaluation(*args, **kwargs):  # output checks must come before the (long) evaluation
        raise AssertionError("the evaluation ran before the bad input was reported")

    if "evaluate-out" in case.id:
        monkeypatch.setattr(posediffusion.evaluate, "evaluate", no_evaluation)
    root = files["root"]
    before = _snapshot(root)
    argv = case.argv.format(**{k: str(v) for k, v in files.items()}).split()
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in case.names:
        assert name in lines[0], (name, lines[0])
    assert _snapshot(root) == before  # no output, no temporary file
    assert not (root / MARKER).exists()  # no pickle payload ran


# ---- inputs that were harmful before and now work, bounded ---------------------------------------------


def _csv(path: Path, frames: list[int | float], track: np.ndarray) -> Path:
    rows = ["frame,joint,x,y"] + [f"{fr},{j},{track[k, j, 0]},{track[k, j, 1]}"
                                  for k, fr in enumerate(frames) for j in range(17)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("last", ["2000000", "1e12"])
def test_sparse_csv_frame_numbers_do_not_allocate_the_gap(tmp_path, last, capsys):
    # A 1.5 KB file naming frames 0 and 2,000,000 (or 1e12) used to make lift build 2 M (or 1e12) frames.
    src = _csv(tmp_path / "sparse.csv", [0, last], _track(2))
    out = tmp_path / "out.npz"
    assert main(["lift", str(src), "--image-size", "1000", "1000", "--out", str(out), *FAST]) == 0
    assert np.load(out)["pose_3d"].shape == (2, 17, 3)  # the frames in sorted order, no gap


def test_one_wild_joint_is_missing_not_a_corrupted_window(tmp_path, capsys):
    track = _track(12).astype(np.float64)
    track[5, 13] = 1e9  # one wrist at 1e9 px in one frame
    src = tmp_path / "wild.npz"
    np.savez(src, keypoints=track, image_size=np.array([1000, 1000]))
    out = tmp_path / "out.npz"
    assert main(["lift", str(src), "--out", str(out), *FAST]) == 0
    data = np.load(out)
    assert data["filled"][5, 13] and data["filled"].sum() == 1
    assert json.loads(str(data["settings"]))["far_outside_joints"] == 1
    assert np.abs(data["keypoints_2d"]).max() < 1000 and np.abs(data["pose_3d"]).max() < 2.0  # metres
    assert "1 of them far outside the image" in capsys.readouterr().out


def test_symlinked_out_writes_the_target_and_keeps_the_link(tmp_path, capsys):
    save_keypoints_npz(tmp_path / "kp.npz", _track(), (1000, 1000))
    target = tmp_path / "real" / "pose.npz"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert main(["lift", str(tmp_path / "kp.npz"), "--out", str(link), *FAST]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.load(target)["pose_3d"].shape == (12, 17, 3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["pose.npz"]  # no temporary file left


def test_npz_without_image_size_takes_the_flag(tmp_path, capsys):
    np.savez(tmp_path / "kp.npz", keypoints=_track())
    out = tmp_path / "out.npz"
    argv = ["lift", str(tmp_path / "kp.npz"), "--image-size", "1000", "1000", "--out", str(out), *FAST]
    assert main(argv) == 0
    assert tuple(np.load(out)["image_size"]) == (1000, 1000)
