"""Readers of JSON keypoint output: MMPose (inferencer files, a folder of one JSON per image,
``--save-predictions``), COCO-results (Detectron2, AlphaPose COCO-17 / Halpe-26 / Halpe-136), COCO keypoint
annotation files (also PoseTrack), PoseFlow's tracked JSON and OpenPose folders (BODY_25 / COCO-18, also
OpenPose <= 1.1 and ``--keypoint_scale`` output). Each returns :class:`Detections`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.data.keypoint_common import (
    Detections,
    Person,
    first_entry,
    flat_points,
    frame_number,
    frames_by_id,
    layout_for,
    logger,
    read_json,
    track_id,
)

#: Detectron2 keypoint scores are a softmax over the heatmap (median about 0.16 on real video), not the
#: 0..1 "is it there" of other tools; Detectron2's own visualiser draws keypoints above 0.05.
DETECTRON2_MIN_CONFIDENCE = 0.05


def _mmpose_instance(instance: dict) -> Person:
    """MMPose instance {'keypoints': [[x, y]], 'keypoint_scores': [s], 'bbox_score'[, 'track_id']}."""
    xy = np.asarray(instance["keypoints"], dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(instance.get("keypoint_scores", np.ones(len(xy))), dtype=np.float64).reshape(-1)
    score = instance.get("bbox_score")
    score = float(np.mean(score)) if score is not None else float(scores.mean())
    return Person(np.concatenate([xy, scores[:, None]], axis=1), score, track_id(instance.get("track_id")))


def _results_person(entry: dict) -> Person:
    """COCO-results / PoseFlow entry {'keypoints': [x, y, v] * K, 'score' | 'scores'[, 'idx']}."""
    points = flat_points(entry["keypoints"])
    score = entry.get("score", entry.get("scores"))
    score = float(np.mean(score)) if score is not None else float(points[:, 2].mean())
    return Person(points, score, track_id(entry.get("idx", entry.get("track_id"))))


def is_poseflow(data: dict) -> bool:
    """PoseFlow's tracked JSON: {image name: [{'keypoints', 'scores', 'idx'}, ...]}."""
    def people(value: Any) -> bool:
        return value is None or isinstance(value, list) and (
            not value or isinstance(value[0], dict) and "keypoints" in value[0])

    return bool(data) and all(people(v) for v in data.values()) and any(data.values())


def pose_detections(path: Path, data: Any) -> Detections:
    """A parsed MMPose / COCO-results / COCO-annotations / PoseFlow document -> detections (layout not yet
    set: ``read_pose_json`` picks it from the keypoint count)."""
    meta: dict = {}
    tool, threshold = "", None
    if isinstance(data, dict):
        if "instance_info" in data:  # MMPose --save-predictions
            meta = data.get("meta_info") or {}
            frames, ids, tool, threshold = _list_frames(path, data["instance_info"])
        elif {"images", "annotations"} <= data.keys():
            return _coco_annotations(path, data)
        elif is_poseflow(data):
            entries = [(name, [_results_person(e) for e in people or []]) for name, people in data.items()]
            (frames, ids), tool = frames_by_id(path, entries), "PoseFlow"
        else:
            raise ValueError(f"{path}: a JSON object with keys {sorted(data)[:8]} is none of the layouts "
                             "of this format")
    else:
        frames, ids, tool, threshold = _list_frames(path, data)
    size = meta.get("image_size") or meta.get("img_shape")
    if size is not None and "img_shape" in meta and "image_size" not in meta:
        size = (size[1], size[0])  # img_shape is (h, w)
    return Detections(frames, "", tuple(size) if size else None, meta.get("fps"), frame_ids=ids,
                      min_confidence=threshold, tool=tool)


def _list_frames(path: Path, data: Any) -> tuple[list[list[Person]], list[int] | None, str, float | None]:
    """The JSON-list layouts -> (people per frame, frame numbers, tool, tool threshold)."""
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of frames or detections, got {type(data).__name__}")
    first = first_entry(data)
    if isinstance(first, list) or first is None:  # predictions: list of frames, each a list of instances
        return [[_mmpose_instance(inst) for inst in frame or []] for frame in data], None, "MMPose", None
    if "instances" in first:  # [{'frame_id' | 'img_id', 'instances': [...]}]
        entries = [(frame.get("frame_id", frame.get("img_id", i)),
                    [_mmpose_instance(inst) for inst in frame["instances"] or []])
                   for i, frame in enumerate(data)]
        return (*frames_by_id(path, entries), "MMPose", None)
    if "image_id" not in first:  # one image's MMPose instance list
        return [[_mmpose_instance(inst) for inst in data]], None, "MMPose", None
    frames, ids = frames_by_id(path, [(entry["image_id"], [_results_person(entry)]) for entry in data])
    if "bbox" in first and not {"idx", "box"} & first.keys():  # Detectron2's instances_to_coco_json
        return frames, ids, "Detectron2", DETECTRON2_MIN_CONFIDENCE
    return frames, ids, "AlphaPose" if "idx" in first else "", None


def _coco_annotations(path: Path, data: dict) -> Detections:
    """COCO keypoint annotations {'images', 'annotations': [{'image_id', 'keypoints', 'num_keypoints'}]}.

    Frames are the images, ordered by the number in their file name (``000012.jpg`` is frame 12) when every
    image has a distinct one, else by image id; images without a person are empty frames. Annotations with
    ``num_keypoints`` 0 or ``iscrowd`` are skipped; v = 0 is missing, v = 1, 2 are used.
    """
    images = data["images"]
    by_id = {image["id"]: image for image in images}
    names = [_name_number(path, image.get("file_name")) for image in images]
    use_names = all(n is not None for n in names) and len(set(names)) == len(names)
    key = {image["id"]: (n if use_names else image["id"]) for image, n in zip(images, names, strict=True)}
    people: dict[Any, list[Person]] = {image_id: [] for image_id in by_id}
    for ann in data["annotations"]:
        if ann.get("iscrowd") or ann.get("num_keypoints", 1) == 0 or not ann.get("keypoints"):
            continue
        if ann["image_id"] not in people:
            raise ValueError(f"{path}: an annotation's image_id {ann['image_id']!r} is not in 'images'")
        points = flat_points(ann["keypoints"])
        score = ann.get("score", ann.get("num_keypoints", float((points[:, 2] > 0).sum())))
        people[ann["image_id"]].append(Person(points, float(score), track_id(ann.get("track_id"))))
    frames, ids = frames_by_id(path, [(key[image_id], found) for image_id, found in people.items()])
    sizes = {(image.get("width"), image.get("height")) for image in images}
    size = sizes.pop() if len(sizes) == 1 and None not in next(iter(sizes)) else None
    if size is None:
        logger.info("%s: the images do not share one width and height; the image size must be given", path)
    return Detections(frames, "", size, frame_ids=ids, tool="COCO annotations")


def _name_number(path: Path, name: Any) -> int | None:
    return frame_number(path, name) if isinstance(name, str) else None


def read_pose_json(path: Path, fmt: str) -> Detections:
    """A JSON file (or a folder of one MMPose JSON per image) of format ``fmt`` ('coco' or 'halpe')."""
    det = read_mmpose_folder(path) if path.is_dir() else pose_detections(path, read_json(path))
    person = next((p for people in det.frames for p in people), None)
    if person is None:
        raise ValueError(f"{path}: no person in any frame")
    det.layout = layout_for(path, len(person.points), fmt)
    if any(len(p.points) != len(person.points) for people in det.frames for p in people):
        raise ValueError(f"{path}: people have different numbers of keypoints")
    return det


def mmpose_folder_files(path: Path) -> list[Path]:
    return sorted(file for file in path.glob("*.json") if file.is_file())  # no FIFO or device


def read_mmpose_folder(path: Path) -> Detections:
    """A folder of MMPose inferencer JSON files, one per image (a list of instances each), ordered by the
    number in the file name."""
    files = mmpose_folder_files(path)
    if not files:
        raise ValueError(f"{path}: no *.json files in this folder")
    entries = []
    for file in files:
        doc = read_json(file)
        instances = doc.get("instance_info", doc.get("instances")) if isinstance(doc, dict) else doc
        if not isinstance(instances, list):
            raise ValueError(f"{file}: expected a list of MMPose instances ({{'keypoints', "
                             "'keypoint_scores'}), as the inferencer writes per image")
        entries.append((file.stem, [_mmpose_instance(inst) for inst in instances]))
    frames, ids = frames_by_id(path, entries)
    return Detections(frames, "", frame_ids=ids, tool="MMPose")


# ---------------------------------------------------------------------------------------------------------
# OpenPose


def openpose_files(path: Path) -> list[Path]:
    """``*_keypoints.json`` of a folder (else its ``*.json``), regular files only, by name."""
    files = sorted(file for file in path.glob("*_keypoints.json") if file.is_file())
    return files or mmpose_folder_files(path)


def read_openpose(path: Path) -> Detections:
    """Folder of ``<name>_<number>_keypoints.json`` -> frames ordered by number.

    ``pose_keypoints_2d`` (OpenPose >= 1.2) or ``pose_keypoints`` (<= 1.1). Coordinates written with
    ``--keypoint_scale 3`` ([0, 1]) or ``4`` ([-1, 1]) are detected (every detected point within [-1, 1];
    [-1, 1] when any coordinate is negative) and scaled by the image size, with a warning.
    """
    if not path.is_dir():
        raise ValueError(f"{path}: openpose input must be the folder of *_keypoints.json files")
    files = openpose_files(path)
    if not files:
        raise ValueError(f"{path}: no *_keypoints.json files in this folder")
    entries, counts = [], set()
    for file in files:
        people = []
        for p in read_json(file)["people"]:
            points = flat_points(p["pose_keypoints_2d"] if "pose_keypoints_2d" in p else p["pose_keypoints"])
            counts.add(len(points))
            present = points[:, 2] > 0
            score = float(points[present, 2].mean()) if present.any() else 0.0
            people.append(Person(points, score, track_id(p.get("person_id"))))
        name = file.name
        entries.append((name[:-len("_keypoints.json")] if name.endswith("_keypoints.json") else file.stem,
                        people))
    layouts = {25: "body25", 18: "openpose_coco18"}
    if not counts or len(counts) > 1 or counts - layouts.keys():
        raise ValueError(f"{path}: expected 25 (BODY_25) or 18 (COCO-18) keypoints per person, "
                         f"found counts {sorted(counts) or 'none (no people)'}")
    frames, ids = frames_by_id(path, entries)
    det = Detections(frames, layouts[counts.pop()], frame_ids=ids, tool="OpenPose")
    _undo_keypoint_scale(path, det)
    return det


def _undo_keypoint_scale(path: Path, det: Detections) -> None:
    """OpenPose ``--keypoint_scale 3``/``4`` output -> [0, 1] coordinates marked ``normalised``."""
    points = np.concatenate([p.points for people in det.frames for p in people])
    finite = np.isfinite(points).all(axis=1)
    detected = finite & (points[:, 2] > 0)
    if not detected.any() or np.abs(points[detected, :2]).max() > 1.0:
        return  # pixels
    signed = bool((points[finite, :2] < 0).any())  # scale 4 writes missing points as (-1, -1, 0)
    for people in det.frames:
        for p in people:
            if signed:
                p.points[:, :2] = (p.points[:, :2] + 1.0) / 2.0
    det.normalised = True
    logger.warning("%s: every OpenPose coordinate lies within [%s, 1]: read as --keypoint_scale %s output "
                   "and scaled by the image size", path, -1 if signed else 0, 4 if signed else 3)
