"""Fixed-length windows over sequences: the one training Dataset, and the window geometry for evaluation.

Window geometry (shared by training, evaluation and lifting): a sequence of F frames is cut into windows
of T frames starting at ``0, stride, 2 stride, ...``; the last window is shifted back to end on the last
frame (``start = F - T``) so that every frame is covered by real data, as D3DP/MixSTE evaluation does.
Only a sequence shorter than T gets padding, by replicating its edge frames; padded frames are marked
invalid and ignored by :func:`merge_windows`.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceLike
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posediffusion.data.sequence import Sequence
from posediffusion.skeleton import H36M_17, Skeleton

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


def flip_pose(x: Array, skeleton: Skeleton = H36M_17) -> Array:
    """Mirror poses left-right: negate channel 0 (x) and swap left/right joints.

    Valid for camera-frame 3D and for normalised 2D (whose x is centred on the image centre).

    Args:
        x: (..., J, C) numpy array or torch tensor, C >= 1.
        skeleton: gives J and the left/right pairs.

    Returns:
        (..., J, C) new array of the same kind, dtype and device; applying it twice gives ``x`` back.
    """
    if x.shape[-2] != skeleton.num_joints:
        raise ValueError(f"flip_pose: expected {skeleton.num_joints} joints on axis -2, got shape "
                         f"{tuple(x.shape)}")
    perm = skeleton.flip_permutation()
    sign = np.ones(x.shape[-1])
    sign[0] = -1.0
    if isinstance(x, torch.Tensor):
        return x[..., torch.as_tensor(perm, device=x.device), :] * torch.as_tensor(sign, dtype=x.dtype,
                                                                                    device=x.device)
    return x[..., perm, :] * sign.astype(x.dtype)


def window_weights(frames: int, weights: str = "uniform") -> np.ndarray:
    """(T,) float64 per-frame weights for :func:`merge_windows`.

    ``"hann"`` is ``sin^2(pi (t + 0.5) / T)``: a Hann taper sampled between the zeros, so every frame keeps
    a positive weight and window centres count most.
    """
    if weights == "uniform":
        return np.ones(frames)
    if weights == "hann":
        return np.sin(np.pi * (np.arange(frames) + 0.5) / frames) ** 2
    raise ValueError(f"weights must be 'uniform' or 'hann', got {weights!r}")


def merge_windows(windows: Array, starts: Array, num_frames: int, weights: str = "uniform") -> Array:
    """Reassemble overlapping windows into one full-length sequence by weighted averaging.

    Frames of a window that fall outside [0, F) (edge padding) are ignored.

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
    raw = starts[:, None] + np.arange(frames)  # (N, T)
    inside = (raw >= 0) & (raw < num_frames)
    frame_of = raw[inside]  # (M,) target frame of each real window frame
    weight_of = np.broadcast_to(window_weights(frames, weights), raw.shape)[inside]  # (M,)
    weight_sum = np.bincount(frame_of, weights=weight_of, minlength=num_frames)  # (F,)
    if (weight_sum <= 0).any():
        raise ValueError(f"merge_windows: frames {np.flatnonzero(weight_sum <= 0)[:5]}... are in no window")
    if isinstance(windows, torch.Tensor):
        return _merge_torch(windows, inside, frame_of, weight_of, weight_sum)
    values = np.asarray(windows)[inside].astype(np.float64)  # (M, ...)
    out = np.zeros((num_frames, *values.shape[1:]))
    np.add.at(out, frame_of, values * weight_of.reshape(-1, *[1] * (values.ndim - 1)))
    return (out / weight_sum.reshape(-1, *[1] * (values.ndim - 1))).astype(windows.dtype)


def _merge_torch(windows: torch.Tensor, inside: np.ndarray, frame_of: np.ndarray, weight_of: np.ndarray,
                 weight_sum: np.ndarray) -> torch.Tensor:
    """Torch branch of :func:`merge_windows` (``index_add_`` on the windows' device and dtype)."""
    device, dtype = windows.device, windows.dtype
    values = windows[torch.as_tensor(inside, device=device)]  # (M, ...)
    shape = (-1, *[1] * (values.dim() - 1))
    weighted = values * torch.as_tensor(weight_of, dtype=dtype, device=device).reshape(shape)
    out = torch.zeros((len(weight_sum), *values.shape[1:]), dtype=dtype, device=device)
    out.index_add_(0, torch.as_tensor(frame_of, device=device), weighted)
    return out / torch.as_tensor(weight_sum, dtype=dtype, device=device).reshape(shape)


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

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        index %= len(self)
        seq_index, start = self.windows[index]
        seq = self.sequences[seq_index]
        indices, inside = window_frame_indices([start], self.frames, seq.num_frames)
        indices, inside = indices[0], inside[0]  # (T,)
        item: dict[str, Any] = {
            "x2d": torch.from_numpy(seq.keypoints_2d[indices].astype(np.float32)),  # (T, J, 2)
            "valid": torch.from_numpy(inside & seq.valid[indices]),  # (T,)
            "sequence": seq_index,
            "start": start,
        }
        if self.has_3d:
            item["x3d"] = torch.from_numpy(seq.pose_3d[indices].astype(np.float32))  # (T, J, 3)
        if self.is_flipped(index):
            item["x2d"] = flip_pose(item["x2d"])
            if self.has_3d:
                item["x3d"] = flip_pose(item["x3d"])
        return item
