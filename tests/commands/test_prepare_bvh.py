"""``posediffusion prepare bvh`` end to end: two small BVH files -> a dataset the Human3.6M loader reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from posediffusion.cli import main
from posediffusion.data.h36m import load_h36m
from posediffusion.io_utils import read_npz
from tests.data.test_bvh import MIXAMO_CM, bvh_text, rest_frames

LICENCE = "CC-BY-4.0 (test data)"


def _turning_walk(frames: int) -> np.ndarray:
    """(F, C) channels of the Mixamo rig: hips at 100 cm walking 2 cm per frame along X, turning 3 deg per
    frame about the vertical (Y); the heights never change: the Head (HeadTop_End) stays at 180 cm."""
    values = rest_frames(MIXAMO_CM, (0, 100, 0), frames)
    values[:, 0] = 2.0 * np.arange(frames)
    values[:, 5] = 3.0 * np.arange(frames)  # root channels: X Y Z position, Z X Y rotation
    return values


@pytest.fixture(scope="module")
def bvh_files(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("bvh")
    paths = []
    for name, frames in (("walk_a", 40), ("walk_b", 30)):
        path = root / f"{name}.bvh"  # 100 fps: 40 frames = 0.39 s -> 20 frames at 50 fps, 30 -> 15
        path.write_text(bvh_text(MIXAMO_CM, _turning_walk(frames), 0.01, prefix="mixamorig:"))
        paths.append(path)
    return paths


def test_prepare_bvh_writes_a_loadable_dataset_with_licences(bvh_files, tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["prepare", "bvh", *map(str, bvh_files), "--out", str(out), "--name", "walks",
            "--licence", LICENCE, "--test-motions", "walk_b"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "walk_a: " in printed and "40 frames at 100 fps -> 20 at 50 fps (mapping mixamo, unit cm, Y up)" \
        in printed
    sequences = load_h36m(out, name="walks", keypoints="gt")
    by_motion = {(s.subject, s.action) for s in sequences}
    split = json.loads((out / "split_walks.json").read_text())
    assert split["motions"]["walk_b"] in ("S9", "S11") and split["motions"]["walk_a"] in ("S1", "S5", "S6",
                                                                                            "S7", "S8")
    assert by_motion == {(split["motions"][m], m) for m in ("walk_a", "walk_b")}
    assert len(sequences) == 8 and {len(s.pose_3d) for s in sequences if s.action == "walk_a"} == {20}
    assert {s.fps for s in sequences} == {50.0}
    assert len(load_h36m(out, name="walks", keypoints="det")) == 8
    # world Z is kept by the placement: HeadTop_End at 180 cm, the ankles (LeftFoot) at 8 cm, in metres
    world = read_npz(out / "data_3d_walks.npz", allow_pickle=True)["positions_3d"].item()
    walk_a = world[split["motions"]["walk_a"]]["walk_a"]
    np.testing.assert_allclose(walk_a[:, 10, 2], 1.8, atol=1e-6)
    np.testing.assert_allclose(walk_a[:, [3, 6], 2], 0.08, atol=1e-6)
    for kind in ("gt", "det"):
        meta = read_npz(out / f"data_2d_walks_{kind}.npz", allow_pickle=True)["metadata"].item()
        assert meta["fps"] == 50 and "credit" not in meta
        for path in bvh_files:
            source = meta["sources"][path.stem]
            assert source["licence"] == LICENCE and source["path"] == str(path)
            assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert split["sources"]["walk_b"]["licence"] == LICENCE
    assert split["sources"]["walk_b"]["source_frames"] == 30 and split["frames"]["walk_b"] == 15


def test_one_file_goes_to_train_with_the_default_licence_and_a_note(bvh_files, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["prepare", "bvh", str(bvh_files[0]), "--out", str(out), "--name", "one", "--fps", "25"]) == 0
    assert "note: no motion on the test subjects" in capsys.readouterr().out
    split = json.loads((out / "split_one.json").read_text())
    assert split["motions"] == {"walk_a": "S1"} and split["frames"]["walk_a"] == 10  # 0.39 s at 25 fps
    assert split["sources"]["walk_a"]["licence"] == "unknown — check the source's terms"
    assert {s.fps for s in load_h36m(out, name="one")} == {25.0}


def test_unknown_test_motion_and_missing_name_are_errors(bvh_files, tmp_path, capsys):
    argv = ["prepare", "bvh", str(bvh_files[0]), "--out", str(tmp_path / "x"), "--name", "x"]
    assert main(argv + ["--test-motions", "nope"]) == 2
    assert "--test-motions: unknown motion name(s) ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):  # --name is required
        main(["prepare", "bvh", str(bvh_files[0]), "--out", str(tmp_path / "x")])
