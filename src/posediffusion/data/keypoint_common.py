"""What every 2D keypoint reader shares: the :class:`Person` and :class:`Detections` records and the frame
numbering rules (dense ranges, the sparseness guard, frame ids kept for the output).

The readers live in ``keypoint_json`` (JSON files and folders) and ``keypoint_tables`` (npz and csv);
``keypoint_formats`` detects the format of a file and holds the registry ``READERS``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: One logger for every reader module, under the name callers filter on (``video.landmarks_to_keypoints``).
logger = logging.getLogger("posediffusion.data.keypoint_formats")

#: Largest magnitude of a frame number read from a file (beyond it float64 cannot count frames).
MAX_FRAME_NUMBER = 2**53


class Person(NamedTuple):
    """One detected person in one frame, in the source layout.

    ``points`` (K, 3): x, y, confidence; ``score``: the tool's person score (higher is better);
    ``track_id``: the tool's id of this person across frames where the file has one (AlphaPose ``idx``
    with ``--pose_track``, PoseFlow ``idx``, PoseTrack/COCO ``track_id``, MMPose ``track_id``, OpenPose
    ``person_id`` >= 0), else ``None``.
    """

    points: np.ndarray
    score: float
    track_id: int | None = None


@dataclass
class Detections:
    """What a reader found: people per frame in a source layout (pixels unless ``normalised``).

    ``image_size`` and ``fps`` are as stored in the file (unchecked); ``keypoints.load_keypoints`` checks
    them. ``frame_ids[i]`` is the input's frame number of ``frames[i]`` (``None`` from a reader means
    0, 1, ...; ``keypoint_formats.READERS`` always fills it in). ``min_confidence`` is the tool's own
    threshold for a detected keypoint when its scores are not on the usual scale (Detectron2: 0.05), used
    when the caller gives none. ``tool`` names the producing tool for messages.
    """

    frames: list[list[Person]]
    layout: str
    image_size: tuple | None = None
    fps: Any = None
    normalised: bool = False
    frame_ids: list[int] | None = None
    min_confidence: float | None = None
    tool: str = ""


# ---------------------------------------------------------------------------------------------------------
# Frame numbers


def bad_frame_number(path: Path, value: Any) -> ValueError:
    return ValueError(f"{path}: frame number {value!r} is not a whole number below {MAX_FRAME_NUMBER}")


def frame_number(path: Path, frame_id: Any) -> int | None:
    """Frame number of an id: an int (or whole float) as is, else the last run of digits in a name
    ("frame_0012.jpg" -> 12); ``None`` for a name without digits (or beyond ``MAX_FRAME_NUMBER``).
    ``ValueError`` for a numeric id that is not a whole number below ``MAX_FRAME_NUMBER`` (1.5, NaN)."""
    if isinstance(frame_id, bool):
        return None
    if isinstance(frame_id, (int, np.integer, float, np.floating)):
        value = float(frame_id) if isinstance(frame_id, (float, np.floating)) else int(frame_id)
        if not (math.isfinite(value) and abs(value) <= MAX_FRAME_NUMBER and value == int(value)):
            raise bad_frame_number(path, frame_id)
        return int(value)
    digits = re.findall(r"\d+", frame_id) if isinstance(frame_id, str) else []
    return int(digits[-1]) if digits and int(digits[-1]) <= MAX_FRAME_NUMBER else None


def is_dense(first: int, last: int, distinct: int) -> bool:
    """Whether frame numbers ``first..last`` (``distinct`` of them used) may be expanded into a dense range
    with the gaps as empty frames. Sparse numbers (e.g. COCO image ids, or a file naming frames 0 and
    2,000,000) are not: every reader that takes frame numbers from a file keeps them in sorted order instead,
    so a small file cannot make the lifter allocate and interpolate millions of frames."""
    return last - first + 1 <= 4 * distinct + 100


def frames_by_id(path: Path, entries: list[tuple[Any, list[Person]]]
                 ) -> tuple[list[list[Person]], list[int] | None]:
    """Group people by frame id -> (people per frame, frame number of each frame or ``None``).

    Numeric ids (ints or names with digits) give a dense frame range, gaps as empty frames, unless they are
    sparse (:func:`is_dense`: then their sorted order). Ids without numbers keep the file's order and get
    no frame numbers (``None``: 0, 1, ...).
    """
    numbers = [frame_number(path, frame_id) for frame_id, _ in entries]
    if entries and all(n is not None for n in numbers):
        first, last = min(numbers), max(numbers)
        distinct = sorted(set(numbers))
        if is_dense(first, last, len(distinct)):
            frames: list[list[Person]] = [[] for _ in range(last - first + 1)]
            for n, (_, people) in zip(numbers, entries, strict=True):
                frames[n - first].extend(people)
            return frames, list(range(first, last + 1))
        logger.warning("%s: frame ids are sparse (%d..%d for %d frames); using their sorted order", path,
                       first, last, len(distinct))
        slot = {n: i for i, n in enumerate(distinct)}
        frames = [[] for _ in distinct]
        for n, (_, people) in zip(numbers, entries, strict=True):
            frames[slot[n]].extend(people)
        return frames, distinct
    grouped: dict[Any, list[Person]] = {}
    for frame_id, people in entries:
        grouped.setdefault(frame_id, []).extend(people)
    return list(grouped.values()), None


def frame_slots(path: Path, numbers: list[float]) -> tuple[np.ndarray, int, list[int]]:
    """Frame numbers of table rows -> (frame index of each row, number of frames, frame number of each
    frame): a dense range from the smallest to the largest number unless sparse (then sorted distinct
    numbers). ``ValueError`` for a number that is not a whole number below ``MAX_FRAME_NUMBER``."""
    bad = next((n for n in numbers if not (abs(n) <= MAX_FRAME_NUMBER and n == int(n))), None)
    if bad is not None:
        raise bad_frame_number(path, bad)
    frames = np.asarray(numbers, dtype=np.int64)
    distinct = np.unique(frames)  # sorted
    first, last = int(distinct[0]), int(distinct[-1])
    if is_dense(first, last, len(distinct)):
        return frames - first, last - first + 1, list(range(first, last + 1))
    logger.warning("%s: frame numbers are sparse (%d..%d for %d frames); using their sorted order", path,
                   first, last, len(distinct))
    return np.searchsorted(distinct, frames), len(distinct), [int(n) for n in distinct]


# ---------------------------------------------------------------------------------------------------------
# Small shared helpers


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: cannot read JSON ({type(err).__name__}: {err})") from err


def first_entry(items: Any) -> Any:
    """The first element of a list of frames that is not empty/None."""
    return next((item for item in items if item), None) if isinstance(items, list) else None


def track_id(value: Any) -> int | None:
    """A tool's person id as an int (``[3.0]`` -> 3); ``None`` when absent, negative or not whole."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_FRAME_NUMBER):
        return None
    return int(value)


#: source layout by keypoint count, per format that reads several
LAYOUT_BY_COUNT = {"coco": {17: "coco17", 133: "coco_wholebody133"},
                   "halpe": {26: "halpe26", 136: "halpe136"}}


def layout_for(path: Path, num_keypoints: int, fmt: str) -> str:
    """Source layout name for a keypoint count, checked against the requested format."""
    for name, counts in LAYOUT_BY_COUNT.items():
        if num_keypoints in counts and fmt in (name, "auto"):
            return counts[num_keypoints]
    raise ValueError(f"{path}: {num_keypoints} keypoints per person do not fit format {fmt!r}; expected "
                     "17 or 133 (coco) or 26 or 136 (halpe)")


def flat_points(values: Any) -> np.ndarray:
    """A flat [x, y, c] * K list -> (K, 3) float64."""
    return np.asarray(values, dtype=np.float64).reshape(-1, 3)
