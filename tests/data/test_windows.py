import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from posediffusion.data.sequence import Sequence
from posediffusion.data.windows import (
    WindowAccumulator,
    WindowDataset,
    merge_windows,
    take_windows,
    window_starts,
)

# Left/right pairs of Human3.6M-17, written out from docs/formats.md.
MIRROR = {1: 4, 2: 5, 3: 6, 14: 11, 15: 12, 16: 13}
MIRROR.update({v: k for k, v in list(MIRROR.items())})


def _sequence(frames, valid=None):
    """Frame f, joint j: 2D (f, j), 3D (f, j, 100 + f)."""
    f, j = np.meshgrid(np.arange(frames, dtype=np.float32), np.arange(17, dtype=np.float32), indexing="ij")
    return Sequence(keypoints_2d=np.stack([f, j], -1), pose_3d=np.stack([f, j, 100 + f], -1), valid=valid)


@pytest.mark.parametrize("num_frames, frames, stride, expected", [
    (10, 4, 4, [0, 4, 6]),
    (10, 4, 2, [0, 2, 4, 6]),
    (10, 4, None, [0, 4, 6]),
    (8, 4, 4, [0, 4]),
    (4, 4, 1, [0]),
    (3, 4, 4, [0]),
    (10, 1, 1, list(range(10))),
])
def test_window_starts_hand_values(num_frames, frames, stride, expected):
    np.testing.assert_array_equal(window_starts(num_frames, frames, stride), expected)


def test_window_starts_cover_every_frame():
    for num_frames in range(1, 30):
        for frames in range(1, 9):
            for stride in range(1, frames + 1):
                starts = window_starts(num_frames, frames, stride)
                covered = np.zeros(num_frames, dtype=bool)
                for s in starts:
                    assert s >= 0 and (s + frames <= num_frames or num_frames < frames)
                    covered[s:s + frames] = True
                assert covered.all()


@pytest.mark.parametrize("args", [(10, 4, 5), (10, 4, 0), (0, 4, 1), (10, 0, None)])
def test_window_starts_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        window_starts(*args)


def test_short_sequence_is_edge_padded_and_masked():
    ds = WindowDataset([_sequence(3)], frames=5)
    assert len(ds) == 1
    item = ds[0]
    assert item["x2d"].shape == (5, 17, 2) and item["x3d"].shape == (5, 17, 3)
    assert item["x2d"].dtype == torch.float32 and item["valid"].dtype == torch.bool
    np.testing.assert_array_equal(item["x2d"][:, 0, 0].numpy(), [0, 1, 2, 2, 2])  # last frame replicated
    np.testing.assert_array_equal(item["x3d"][:, 5, 2].numpy(), [100, 101, 102, 102, 102])
    np.testing.assert_array_equal(item["valid"].numpy(), [True, True, True, False, False])
    assert (item["sequence"], item["start"]) == (0, 0)


def test_take_windows_replicates_both_ends():
    x = np.arange(4.0)[:, None]  # (F=4, 1)
    out = take_windows(x, [-2, 2], 4)
    np.testing.assert_array_equal(out[..., 0], [[0, 0, 0, 1], [2, 3, 3, 3]])
    out_t = take_windows(torch.tensor(x), torch.tensor([-2, 2]), 4)
    assert isinstance(out_t, torch.Tensor) and torch.equal(out_t, torch.tensor(out))


def test_dataset_windows_and_sequence_valid_mask():
    seqs = [_sequence(10, valid=np.arange(10) != 7), _sequence(4)]
    ds = WindowDataset(seqs, frames=4, stride=3)
    assert ds.windows == [(0, 0), (0, 3), (0, 6), (1, 0)]
    item = ds[2]
    np.testing.assert_array_equal(item["x2d"][:, 0, 0].numpy(), [6, 7, 8, 9])
    np.testing.assert_array_equal(item["valid"].numpy(), [True, False, True, True])
    assert ds[-1]["sequence"] == 1
    with pytest.raises(IndexError):
        ds[4]
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["x2d"].shape == (4, 4, 17, 2) and batch["start"].tolist() == [0, 3, 6, 0]


def _independent_flip(x):
    out = np.empty_like(x)
    for j in range(17):
        out[..., MIRROR.get(j, j), :] = x[..., j, :]
    out[..., 0] *= -1
    return out


def test_flip_augmentation_is_correct_and_deterministic():
    seqs = [_sequence(40)]
    plain = WindowDataset(seqs, frames=4)
    ds = WindowDataset(seqs, frames=4, flip=True, seed=3)
    flips = [ds.is_flipped(i) for i in range(len(ds))]
    assert 2 <= sum(flips) <= 8  # 10 windows, probability 0.5
    for i in range(len(ds)):
        item, ref = ds[i], plain[i]
        for key in ("x2d", "x3d"):
            expected = _independent_flip(ref[key].numpy()) if flips[i] else ref[key].numpy()
            np.testing.assert_array_equal(item[key].numpy(), expected)
    again = WindowDataset(seqs, frames=4, flip=True, seed=3)
    assert [again.is_flipped(i) for i in range(len(ds))] == flips
    ds.set_epoch(1)
    epoch1 = [ds.is_flipped(i) for i in range(len(ds))]
    ds.set_epoch(0)
    assert [ds.is_flipped(i) for i in range(len(ds))] == flips
    other_seed = WindowDataset(seqs, frames=4, flip=True, seed=4)
    assert epoch1 != flips and [other_seed.is_flipped(i) for i in range(len(ds))] != flips


def test_merge_windows_recovers_known_signal():
    num_frames, frames = 23, 6
    signal = np.random.default_rng(1).normal(size=(num_frames, 17, 3))
    for stride in (1, 4, 6):
        starts = window_starts(num_frames, frames, stride)
        windows = np.stack([signal[s:s + frames] for s in starts])  # (N, T, J, 3)
        for weights in ("uniform", "hann"):
            merged = merge_windows(windows, starts, num_frames, weights)
            np.testing.assert_allclose(merged, signal, atol=1e-12)
            merged = merge_windows(torch.tensor(windows, dtype=torch.float32), starts, num_frames, weights)
            assert merged.dtype == torch.float32
            np.testing.assert_allclose(merged.numpy(), signal, atol=1e-5)


def test_merge_windows_ignores_padding_and_averages_overlap():
    # Two windows of T=4 on F=5: starts 0 and 2 (values 1 and 3), plus padding beyond the end.
    windows = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 99.0]])
    out = merge_windows(windows, [0, 2], 5)
    np.testing.assert_allclose(out, [1, 1, 2, 2, 3])
    # Hann weights sin^2(pi (t + 0.5) / 4): t=0,3 -> 0.1464..., t=1,2 -> 0.8535...
    lo, hi = np.sin(np.pi / 8) ** 2, np.sin(3 * np.pi / 8) ** 2
    out = merge_windows(windows, [0, 2], 5, weights="hann")
    np.testing.assert_allclose(out[2], (1 * hi + 3 * lo) / (hi + lo))
    np.testing.assert_allclose(out[3], (1 * lo + 3 * hi) / (lo + hi))
    short = merge_windows(np.array([[[5.0], [6.0], [6.0], [6.0]]]), [0], 2)  # F < T, padded window
    np.testing.assert_allclose(short, [[5.0], [6.0]])


def test_accumulator_streaming_equals_merge_windows():
    # Windows added a few at a time give exactly merge_windows' result (numpy float64 and torch float32).
    num_frames, frames = 23, 6
    rng = np.random.default_rng(2)
    starts = window_starts(num_frames, frames, 2)
    windows = rng.normal(size=(len(starts), frames, 17, 3))
    for weights in ("uniform", "hann"):
        for kind in (np.asarray, lambda a: torch.tensor(a, dtype=torch.float32)):
            acc = WindowAccumulator(num_frames, frames, weights)
            for first in range(0, len(starts), 3):
                acc.add(starts[first:first + 3], {"x": kind(windows[first:first + 3])})
            merged = merge_windows(kind(windows), starts, num_frames, weights)
            streamed = acc.result("x")
            if isinstance(merged, torch.Tensor):
                assert streamed.dtype == torch.float32 and torch.equal(streamed, merged)
            else:
                assert streamed.dtype == np.float64 and np.array_equal(streamed, merged)
    with pytest.raises(ValueError, match="expected"):
        acc.add([0], {"x": np.zeros((1, frames + 1, 3))})


def test_merge_windows_rejects_gaps_and_bad_starts():
    with pytest.raises(ValueError, match="in no window"):
        merge_windows(np.ones((2, 3)), [0, 4], 7)
    with pytest.raises(ValueError, match="starts"):
        merge_windows(np.ones((2, 3)), [0], 3)
    with pytest.raises(ValueError, match="weights"):
        merge_windows(np.ones((1, 3)), [0], 3, weights="box")


def test_dataset_without_3d_and_mixed():
    no_3d = Sequence(keypoints_2d=np.zeros((5, 17, 2), dtype=np.float32))
    item = WindowDataset([no_3d], frames=4)[0]
    assert "x3d" not in item and item["x2d"].shape == (4, 17, 2)
    with pytest.raises(ValueError, match="pose_3d"):
        WindowDataset([no_3d, _sequence(5)], frames=4)
