"""Which aggregation should `lift` use by default? Measured on the VALIDATION takes of the training
subjects (never the test split), with the bundled model, exactly as `posediffusion lift` runs.

    OMP_NUM_THREADS=1 python benchmarks/bundled/aggregation_on_validation.py --data-dir DATA \
        [--checkpoint RUN] [--hypotheses 5 --steps 2 --flip 0]

H, K and flip default to ``lift.FAST_SAMPLING`` (what ``lift`` uses today: H=5, K=2, no flip). The first
recorded run (aggregation_on_validation.json, the previous bundled model, 2026-11-25) used H=5, K=5, flip.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from posediffusion.camera import image_coordinates
from posediffusion.config import DataConfig
from posediffusion.data.selection import load_sequences, split_validation
from posediffusion.lift import FAST_SAMPLING, lift_keypoints, load_lifter
from posediffusion.metrics import mpjpe, mpjve, p_mpjpe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--camera", default="54138969")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--hypotheses", type=int, default=FAST_SAMPLING["hypotheses"])
    parser.add_argument("--steps", type=int, default=FAST_SAMPLING["steps"])
    parser.add_argument("--flip", type=int, choices=(0, 1), default=int(FAST_SAMPLING["flip"]))
    args = parser.parse_args()
    data = DataConfig(dataset="cmu", data_dir=args.data_dir, keypoints="det",
                      subjects_train=["S1", "S5", "S6", "S7", "S8"], subjects_test=["S9", "S11"])
    _, val = split_validation(load_sequences(data, "train"), 0.1, 0)  # the bundled run's validation takes
    val = [s for s in val if s.camera_id == args.camera]
    model, source = load_lifter(args.checkpoint)
    preds: dict[str, list] = {}
    truth = []
    for seq in val:
        pixels = image_coordinates(seq.keypoints_2d, seq.camera["res_w"], seq.camera["res_h"])
        result = lift_keypoints(pixels, (seq.camera["res_w"], seq.camera["res_h"]), model,
                                hypotheses=args.hypotheses, steps=args.steps, flip=bool(args.flip))
        for label, pose in result.alternatives.items():
            preds.setdefault(label, []).append(pose)
        truth.append(seq.pose_3d)
    report = {"model": source, "split": "validation (training subjects' held-out takes)",
              "sequences": [s.name for s in val], "frames": int(sum(len(t) for t in truth)),
              "hypotheses": args.hypotheses, "steps": args.steps, "flip": bool(args.flip), "input": "det 2D"}
    for label, poses in preds.items():
        report[label] = {
            "mpjpe_mm": 1000 * mpjpe(np.concatenate(poses), np.concatenate(truth)),
            "p_mpjpe_mm": 1000 * p_mpjpe(np.concatenate(poses), np.concatenate(truth)),
            "mpjve_mm": 1000 * float(np.mean([mpjve(p, t) for p, t in zip(poses, truth, strict=True)])),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
