"""Fixed-length windows over sequences: the one training Dataset, the window geometry, and the merge.

Window geometry (shared by training, evaluation and lifting): a sequence of F frames is cut into windows
of T frames starting at ``0, stride, 2 stride, ...``; the last window is shifted back to end on the last
frame (``start = F - T``) so that every frame is covered by real data, as D3DP/MixSTE evaluation does.
Only a sequence shorter than T gets padding, by replicating its edge frames; padded frames are marked
invalid and ignored by :class:`WindowAccumulator`, the one merge of per-window values back into a
sequence (streaming, used by :func:`merge_windows` and by ``posediffusion.inference``).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceLike
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posediffusion.data.sequence import Sequence
from posediffusion.skeleton import flip_pose

Array = Any  # numpy.ndarray | torch.Tensor


def window_starts(num_frames: int, frames: int, stride: int | None = None) -> np.ndarray:
    """Start frames of the T-frame windows that cover a sequence of F frames.

    Starts are ``0, stride, 2 stride, ...`` up to ``F - T``, plus ``F - T`` itself if the stride skips it;
    ``F < T`` gives the single start 0 (the window is edge-padded past the end).

    Args:
        num_frames: F >= 1.
        frames: T >= 1, the window length.
        stride: step between starts, 1 <= stride <= T (larger would leave frames uncovered); ``None`` = T.

    Returns:
        (N,) int64 starts, increasing.
    """
    stride = frames if stride is None else stride
    if num_frames < 1 or frames < 1:
        raise ValueError(f"need num_frames >= 1 and frames >= 1, got {num_frames} and {frames}")
    if not 1 <= stride <= frames:
        raise ValueError(f"stride must be in [1, frames={frames}] so that every frame is covered, "
                         f"got {stride}")
    last = max(num_frames - frames, 0)
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts


def window_frame_indices(starts: Array, frames: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of each window, clipped to the sequence (edge replication), and the real-frame mask.

    Args:
        starts: (N,) window starts; may be negative or run past the end.
        frames: T.
        num_frames: F.

    Returns:
        indices (N, T) int64 in [0, F), inside (N, T) bool (False where the window runs past either end).
    """
    raw = np.asarray(starts, dtype=np.int64).reshape(-1, 1) + np.arange(frames)  # (N, T)
    inside = (raw >= 0) & (raw < num_frames)
    return np.clip(raw, 0, num_frames - 1), inside


def take_windows(array: Array, starts: Array, frames: int) -> Array:
    """Cut (F, ...) into (N, T, ...) windows, replicating the edge frame where a window runs past an end.

    Works for numpy arrays and torch tensors (same kind, dtype and device out).
    """
    indices, _ = window_frame_indices(starts, frames, len(array))
    if isinstance(array, torch.Tensor):
        return array[torch.as_tensor(indices, device=array.device)]
    return np.asarray(array)[indices]


def window_weights(frames: int, weights: str = "uniform") -> np.ndarray:
    """(T,) float64 per-frame weights for :class:`WindowAccumulator`.

    ``"hann"`` is ``sin^2(pi (t + 0.5) / T)``: a Hann taper sampled between the zeros, so every frame keeps
    a positive weight and window centres count most.
    """
    if weights == "uniform":
        return np.ones(frames)
    if weights == "hann":
        return np.sin(np.pi * (np.arange(frames) + 0.5) / frames) ** 2
    raise ValueError(f"weights must be 'uniform' or 'hann', got {weights!r}")


class WindowAccumulator:
    """Weighted sums of per-window values over one sequence of F frames, fed window by window.

    Windows may arrive in any number of :meth:`add` calls (memory O(F), not O(windows)); :meth:`result`
    is the weighted mean over the windows that cover each frame. Window frames outside [0, F) (edge
    padding) are ignored. Numpy values are summed in float64; torch values in their own dtype on their
    own device (``index_add_``), so GPU results stay on the GPU.

    Args:
        num_frames: F.
        frames: T, the window length.
        weights: ``"uniform"`` or ``"hann"`` (:func:`window_weights`).
    """

    def __init__(self, num_frames: int, frames: int, weights: str = "uniform") -> None:
        self.num_frames, self.frames = num_frames, frames
        self.taper = window_weights(frames, weights)  # (T,)
        self.weight = np.zeros(num_frames)  # (F,) float64 sum of the weights per frame
        self.sums: dict[str, Array] = {}

    def add(self, starts: Array, values: dict[str, Array]) -> None:
        """Add the windows starting at ``starts`` (n,); each value is (n, T, ...) numpy or torch."""
        starts = np.asarray(starts.cpu() if isinstance(starts, torch.Tensor) else starts, dtype=np.int64)
        raw = starts.reshape(-1, 1) + np.arange(self.frames)  # (n, T)
        inside = (raw >= 0) & (raw < self.num_frames)
        rows = raw[inside]  # (M,) target frame of each real window frame
        weight = np.broadcast_to(self.taper, raw.shape)[inside]  # (M,)
        np.add.at(self.weight, rows, weight)
        for name, value in values.items():
            if tuple(value.shape[:2]) != raw.shape:
                raise ValueError(f"WindowAccumulator: '{name}' has shape {tuple(value.shape)}, expected "
                                 f"({len(starts)}, {self.frames}, ...)")
            self.sums[name] = self._accumulate(self.sums.get(name), value, inside, rows, weight)

    def _accumulate(self, total: Array | None, value: Array, inside: np.ndarray, rows: np.ndarray,
                    weight: np.ndarray) -> Array:
        """``total`` (F, ...) plus the weighted real frames of ``value`` (n, T, ...)."""
        if isinstance(value, torch.Tensor):
            device, dtype = value.device, value.dtype
            picked = value[torch.as_tensor(inside, device=device)]  # (M, ...)
            shape = (-1, *[1] * (picked.dim() - 1))
            weighted = picked * torch.as_tensor(weight, dtype=dtype, device=device).reshape(shape)
            if total is None:
                total = torch.zeros((self.num_frames, *picked.shape[1:]), dtype=dtype, device=device)
            return total.index_add_(0, torch.as_tensor(rows, device=device), weighted)
        picked = np.asarray(value)[inside].astype(np.float64)  # (M, ...)
        if total is None:
            total = np.zeros((self.num_frames, *picked.shape[1:]))
        np.add.at(total, rows, picked * weight.reshape(-1, *[1] * (picked.ndim - 1)))
        return total

    def result(self, name: str) -> Array:
        """(F, ...) weighted mean of ``name``: float64 numpy, or a tensor in the values' dtype and device.

        Raises:
            ValueError: a frame is covered by no window.
        """
        if (self.weight <= 0).any():
            raise ValueError(f"frames {np.flatnonzero(self.weight <= 0)[:5]}... are in no window")
        total = self.sums[name]
        shape = (-1, *[1] * (total.ndim - 1))
        if isinstance(total, torch.Tensor):
            return total / torch.as_tensor(self.weight, dtype=total.dtype, device=total.device).reshape(shape)
        return total / self.weight.reshape(shape)


def merge_windows(windows: Array, starts: Array, num_frames: int, weights: str = "uniform") -> Array:
    """Reassemble overlapping windows into one full-length sequence by weighted averaging.

    All windows at once through a :class:`WindowAccumulator`; frames of a window that fall outside [0, F)
    (edge padding) are ignored.

    Args:
        windows: (N, T, ...) numpy array or torch tensor, window n covering frames ``starts[n] + [0, T)``.
        starts: (N,) window starts (e.g. from :func:`window_starts`).
        num_frames: F.
        weights: ``"uniform"`` or ``"hann"`` (:func:`window_weights`).

    Returns:
        (F, ...) of the same kind and dtype as ``windows`` (numpy accumulates in float64).

    Raises:
        ValueError: shapes disagree or a frame is covered by no window.
    """
    num_windows, frames = windows.shape[0], windows.shape[1]
    starts = np.asarray(starts.cpu() if isinstance(starts, torch.Tensor) else starts, dtype=np.int64)
    if starts.shape != (num_windows,):
        raise ValueError(f"merge_windows: {num_windows} windows but starts has shape {starts.shape}")
    accumulator = WindowAccumulator(num_frames, frames, weights)
    accumulator.add(starts, {"windows": windows})
    try:
        merged = accumulator.result("windows")
    except ValueError as err:
        raise ValueError(f"merge_windows: {err}") from err
    return merged if isinstance(merged, torch.Tensor) else merged.astype(windows.dtype)


class WindowDataset(Dataset):
    """T-frame windows over a list of Sequences (any loader), with optional flip augmentation.

    Item (a dict; the default ``collate_fn`` stacks it into a batch):
        ``"x2d"`` (T, J, 2) float32 normalised 2D; ``"x3d"`` (T, J, 3) float32 root-relative metres (absent
        when no sequence has 3D); ``"valid"`` (T,) bool, False on padded frames and on frames the sequence
        marks invalid; ``"sequence"`` int index into ``sequences``; ``"start"`` int first frame (window
        frame t is sequence frame ``start + t``, clipped to the sequence).

    Flip augmentation mirrors the whole window (:func:`flip_pose`, 2D and 3D together) with probability
    0.5, decided by ``(seed, epoch, index)`` only, so it is reproducible and the same in every DataLoader
    worker. Call :meth:`set_epoch` before each epoch; with ``persistent_workers=True`` the workers keep
    their own copy, so the epoch change would not reach them.

    Args:
        sequences: Sequences in Human3.6M-17 joint order.
        frames: T.
        stride: step between window starts (1..T); ``None`` = T (non-overlapping but last).
        flip: enable flip augmentation.
        seed: seed of the flip decisions.
    """

    def __init__(self, sequences: SequenceLike[Sequence], frames: int, stride: int | None = None,
                 flip: bool = False, seed: int = 0) -> None:
        self.sequences = list(sequences)
        if not self.sequences:
            raise ValueError("WindowDataset: no sequences")
        with_3d = [s.pose_3d is not None for s in self.sequences]
        if any(with_3d) and not all(with_3d):
            raise ValueError("WindowDataset: some sequences have pose_3d and some do not")
        self.has_3d = all(with_3d)
        self.frames, self.stride = frames, frames if stride is None else stride
        self.flip, self.seed, self.epoch = flip, seed, 0
        #: (sequence index, start) of every window, in order.
        self.windows: list[tuple[int, int]] = [
            (i, int(start)) for i, seq in enumerate(self.sequences)
            for start in window_starts(seq.num_frames, frames, self.stride)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Select the flip decisions of ``epoch`` (call once per epoch before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.windows)

    def is_flipped(self, index: int) -> bool:
        """Whether item ``index`` is mirrored in the current epoch."""
        if not self.flip:
            return False
        return bool(np.random.default_rng((self.seed, self.epoch, index)).random() < 0.5)

    def window_poses(self, index: int, seq_index: int, indices: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        """2D and 3D of item ``index`` before any flip: the frames ``indices`` (T,) of sequence ``seq_index``.

        Returns (x2d (T, J, 2), x3d (T, J, 3) or ``None`` without 3D), float32. The hook that
        :class:`~posediffusion.data.augment.CameraAugmentedWindows` replaces with a virtual camera.
        """
        seq = self.sequences[seq_index]
        x3d = seq.pose_3d[indices].astype(np.float32) if self.has_3d else None
        return seq.keypoints_2d[indices].astype(np.float32), x3d

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        index %= len(self)
        seq_index, start = self.windows[index]
        seq = self.sequences[seq_index]
        indices, inside = window_frame_indices([start], self.frames, seq.num_frames)
        indices, inside = indices[0], inside[0]  # (T,)
        x2d, x3d = self.window_poses(index, seq_index, indices)
        item: dict[str, Any] = {
            "x2d": torch.from_numpy(x2d),  # (T, J, 2)
            "valid": torch.from_numpy(inside & seq.valid[indices]),  # (T,)
            "sequence": seq_index,
            "start": start,
        }
        if self.has_3d:
            item["x3d"] = torch.from_numpy(x3d)  # (T, J, 3)
        if self.is_flipped(index):
            item["x2d"] = flip_pose(item["x2d"])
            if self.has_3d:
                item["x3d"] = flip_pose(item["x3d"])
        return item
