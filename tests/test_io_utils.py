import numpy as np
import pytest

from posediffusion.io_utils import read_npz, save_npz_atomic


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
