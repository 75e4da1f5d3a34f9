"""Lift whole sequences with a window model: cut into windows, sample them in batches, merge them back.

The one loop behind ``lift.lift_keypoints`` (one clip, overlapping windows merged with a Hann taper) and
``evaluate.predict_sequences`` (a test set, windows of all sequences batched together, uniform merge).
The model only takes windows of exactly ``T = model.config.model.frames`` frames; the geometry
(``data.windows.window_starts``: starts every ``stride`` frames, the last window ending on the last frame,
edge padding for clips shorter than T) and the merge (``data.windows.WindowAccumulator``) are shared with
training, so every caller cuts and merges the same way.

Order is fixed, so results are reproducible: windows go sequence by sequence, in start order, and the
sampler draws its noise from ``generator`` batch after batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from posediffusion.data.windows import WindowAccumulator, take_windows, window_starts

#: ``values(samples, x2d) -> {name: (n, T, ...)}``: what to merge from one batch of n windows, given the
#: sampler output (n, H, T, J, 3) or (K, n, H, T, J, 3) and the (n, T, J, 2) input windows; called as
#: ``values(samples, x2d, visible=...)`` with the (n, T, J) bool windows of the visibility when
#: :func:`sample_sequences` was given one.
WindowValues = Callable[..., dict[str, Any]]


def window_major(samples: Tensor, x2d: Tensor, visible: Tensor | None = None) -> dict[str, Tensor]:
    """Default :data:`WindowValues`: the samples with the window dims first, under ``"samples"``
    (``x2d`` and ``visible`` are not needed).

    (n, H, T, J, 3) -> (n, T, H, J, 3); (K, n, H, T, J, 3) -> (n, T, K, H, J, 3).
    """
    if samples.dim() == 5:
        return {"samples": samples.permute(0, 2, 1, 3, 4)}
    return {"samples": samples.permute(1, 3, 0, 2, 4, 5)}


def sample_sequences(
    model: torch.nn.Module,
    keypoints: Sequence[np.ndarray],
    *,
    hypotheses: int,
    steps: int,
    flip: bool,
    generator: torch.Generator,
    stride: int | None = None,
    batch_size: int = 64,
    eta: float | None = None,
    return_all_steps: bool = False,
    weights: str = "uniform",
    values: WindowValues = window_major,
    progress: bool = False,
    visible: Sequence[np.ndarray] | None = None,
    antithetic: bool | None = None,
) -> Iterator[tuple[int, WindowAccumulator]]:
    """Sample every window of every sequence and merge per sequence; yield each as soon as it is complete.

    Args:
        model: a ``PoseDiffusion`` (anything with ``config.model.frames``, parameters on its device and
            ``sample(x2d, num_hypotheses, steps, flip, generator, return_all_steps, eta)``).
        keypoints: per sequence (F_i, J, 2) normalised screen coordinates.
        hypotheses, steps, flip, eta, return_all_steps: passed to ``model.sample``.
        generator: the sampler's random stream, used batch after batch.
        stride: window stride (1..T); ``None`` = T.
        batch_size: windows per sampler call; a batch may span several sequences.
        weights: per-frame window weights of the merge, ``"uniform"`` or ``"hann"``.
        values: what to merge from each batch (:data:`WindowValues`); numpy values merge in float64,
            tensors in their dtype on the model's device.
        progress: show a tqdm bar over the batches.
        visible: per sequence (F_i, J) bool, False for joints missing from the input: windowed like the
            keypoints and passed to ``model.sample(visible=...)`` (a model with a missing-joint input
            infers them) and to ``values``; ``None``: not passed (every joint counts as seen).
        antithetic: passed to ``model.sample`` when not ``None`` (``None``: the model's config decides).

    Yields:
        ``(index, accumulator)`` in sequence order; ``accumulator.result(name)`` is the (F_i, ...) merge.
    """
    frames = model.config.model.frames
    device = next(model.parameters()).device
    if visible is not None and [np.shape(v) for v in visible] != [np.shape(k)[:-1] for k in keypoints]:
        raise ValueError("visible must hold one (F_i, J) mask per sequence, shaped like its keypoints' "
                         "(F_i, J, 2) without the last axis")
    pairing = {} if antithetic is None else {"antithetic": antithetic}
    plan = [(i, int(start)) for i, kp in enumerate(keypoints)
            for start in window_starts(len(kp), frames, stride)]  # (sequence, start) of every window
    remaining = Counter(i for i, _ in plan)
    batches = [plan[first : first + batch_size] for first in range(0, len(plan), batch_size)]
    if progress:
        batches = tqdm(batches, desc="lifting", unit="batch")
    merging: dict[int, WindowAccumulator] = {}
    for batch in batches:
        x2d = np.stack([take_windows(keypoints[i], [start], frames)[0] for i, start in batch])
        x2d = torch.from_numpy(x2d.astype(np.float32)).to(device)  # (n, T, J, 2)
        options = {}
        if visible is not None:
            seen = np.stack([take_windows(np.asarray(visible[i], bool), [start], frames)[0]
                             for i, start in batch])  # (n, T, J)
            options["visible"] = torch.from_numpy(seen).to(device)  # (n, T, J) bool
        samples = model.sample(x2d, num_hypotheses=hypotheses, steps=steps, flip=flip, generator=generator,
                               return_all_steps=return_all_steps, eta=eta, **options, **pairing)
        per_window = values(samples, x2d, **options)  # name -> (n, T, ...)
        for i, rows in _runs(batch):
            if i not in merging:
                merging[i] = WindowAccumulator(len(keypoints[i]), frames, weights)
            merging[i].add([start for _, start in batch[rows]], {k: v[rows] for k, v in per_window.items()})
            remaining[i] -= rows.stop - rows.start
            if remaining[i] == 0:
                yield i, merging.pop(i)


def _runs(batch: list[tuple[int, int]]) -> Iterator[tuple[int, slice]]:
    """(sequence index, rows) of each run of consecutive windows of one sequence in a batch."""
    first = 0
    for row in range(1, len(batch) + 1):
        if row == len(batch) or batch[row][0] != batch[first][0]:
            yield batch[first][0], slice(first, row)
            first = row
