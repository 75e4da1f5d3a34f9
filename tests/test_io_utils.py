import numpy as np
import pytest

from posediffusion.io_utils import (
    check_output_folder,
    check_output_path,
    npz_dict,
    read_npz,
    save_npz_atomic,
    write_text_atomic,
)


def test_read_npz_round_trip_and_pickle_policy(tmp_path):
    plain, pickled = tmp_path / "plain.npz", tmp_path / "pickled.npz"
    save_npz_atomic(plain, a=np.arange(3.0))
    save_npz_atomic(pickled, d=np.array({"x": 1}, dtype=object))
    np.testing.assert_array_equal(read_npz(plain)["a"], [0.0, 1.0, 2.0])
    assert read_npz(pickled, allow_pickle=True)["d"].item() == {"x": 1}
    with pytest.raises(ValueError, match="pickled.npz: cannot read predictions npz"):
        read_npz(pickled, what="predictions", hint="predictions npz")  # user files never unpickle
    with pytest.raises(FileNotFoundError, match="missing.npz: mocap file not found"):
        read_npz(tmp_path / "missing.npz", what="mocap")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: cannot read npz"):
        read_npz(tmp_path / "junk.npz")


# ---- the restricted unpickler behind read_npz(allow_pickle=True) ----------------------------------------


class _Payload:
    """Pickles as a call of ``func(*args)``: plain pickle would run it on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _object(value):
    array = np.empty((), dtype=object)
    array[()] = value
    return array


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "subprocess.call", "reduce"])
def test_pickled_code_is_refused_and_never_runs(tmp_path, payload):
    import builtins
    import os
    import subprocess

    marker = tmp_path / "ran"
    func, args = {"os.system": (os.system, (f"touch {marker}",)),
                  "builtins.eval": (builtins.eval, (f"open({str(marker)!r}, 'w')",)),
                  "subprocess.call": (subprocess.call, (["touch", str(marker)],)),
                  "reduce": (_Payload, (print, "x"))}[payload]
    path = tmp_path / "data_2d_evil_gt.npz"
    np.savez_compressed(path, positions_2d=_object({"S1": {"Walk": [_Payload(func, *args)]}}),
                        metadata=_object({"num_joints": 17}))
    with pytest.raises(ValueError, match=r"data_2d_evil_gt.npz: cannot read npz \(member 'positions_2d.npy': "
                                         r"refused to load .*only hold numpy arrays, dicts"):
        read_npz(path, allow_pickle=True)
    assert not marker.exists()


def test_videopose3d_layout_still_loads(tmp_path):
    """dict of dicts of (lists of) arrays plus a metadata dict, as VideoPose3D / prepare mocap write them."""
    rng = np.random.default_rng(0)
    positions_2d = {"S1": {"Walking 1": [rng.random((5, 17, 2)).astype(np.float32) for _ in range(4)],
                           "Eating": [rng.random((3, 17, 2)).astype(np.float32)]}}
    metadata = {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6], [1, 2, 3]], "layout_name": "h36m",
                "fps": 50.0, "camera_ids": ["54138969"], "units": b"px", "ok": True, "none": None,
                "pair": (1, 2.5), "complex": 1 + 2j}
    masks = {"S1": {"Walking 1": [np.zeros((5, 17), bool)]}}
    path = tmp_path / "data_2d_h36m_cpn.npz"
    np.savez_compressed(path, positions_2d=_object(positions_2d), metadata=_object(metadata),
                        outliers=_object(masks), plain=np.arange(3.0))
    npz = read_npz(path, allow_pickle=True)
    got = npz_dict(npz, "positions_2d", path)
    np.testing.assert_array_equal(got["S1"]["Walking 1"][2], positions_2d["S1"]["Walking 1"][2])
    assert got["S1"]["Walking 1"][0].dtype == np.float32
    assert npz_dict(npz, "metadata", path) == metadata
    assert npz_dict(npz, "outliers", path)["S1"]["Walking 1"][0].dtype == bool
    np.testing.assert_array_equal(npz["plain"], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_of_numpy_objects_loads(tmp_path, protocol):
    """Files written by older numpy / Python versions pickle the same objects with other protocols."""
    import io
    import pickle
    import zipfile

    value = _object({"a": np.arange(3), "s": np.float64(2.5), "b": [b"x", b"", "t", None, False, (1,)]})
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(value))
    pickle.dump(value, buffer, protocol=protocol)
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
    got = read_npz(path, allow_pickle=True)["x"].item()
    np.testing.assert_array_equal(got["a"], [0, 1, 2])
    assert got["s"] == 2.5 and got["b"] == [b"x", b"", "t", None, False, (1,)]


def test_restricted_unpickler_refuses_a_non_array_member(tmp_path):
    import io
    import pickle
    import zipfile

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(_object(1)))
    pickle.dump({"not": "an array"}, buffer, protocol=4)
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
    with pytest.raises(ValueError, match="d.npz: cannot read npz .*holds a dict, not an array"):
        read_npz(tmp_path / "d.npz", allow_pickle=True)


# ---- output paths -----------------------------------------------------------------------------------


def test_outputs_only_replace_regular_files(tmp_path):
    import os

    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "file").write_text("x")
    for path, message in ((folder, "is a folder"), (tmp_path / "fifo.txt", "not a regular file"),
                          (tmp_path / "file" / "x.txt", "file is not a folder")):
        with pytest.raises(ValueError, match=message):
            write_text_atomic(path, "new")
        with pytest.raises(ValueError, match=f"--out {path}: "):
            check_output_path(path, flag="--out")
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            write_text_atomic("/dev/null", "new")
    with pytest.raises(ValueError, match=r"--json .*x.txt: the file name must end in .json"):
        check_output_path(tmp_path / "x.txt", flag="--json", suffixes=(".json",))
    assert check_output_path(tmp_path / "new" / "deeper" / "x.JSON", suffixes=(".json",)).name == "x.JSON"
    write_text_atomic(tmp_path / "new" / "deeper" / "x.txt", "made")  # missing folders are created
    write_text_atomic(tmp_path / "file", "replaced")  # a regular file is replaced
    assert (tmp_path / "file").read_text() == "replaced"
    with pytest.raises(ValueError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "file", flag="--out")
    with pytest.raises(ValueError, match="file is not a folder"):
        check_output_folder(tmp_path / "file" / "sub", flag="--out")
    assert check_output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"


def test_symlinked_output_writes_its_target(tmp_path):
    import os

    target = tmp_path / "target.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "sub" / "made.txt")
    write_text_atomic(dangling, "made")
    assert (tmp_path / "sub" / "made.txt").read_text() == "made" and dangling.is_symlink()
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)
    with pytest.raises(ValueError, match="symlink loop"):
        write_text_atomic(loop, "x")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert os.readlink(link) == str(target)
