"""Make the bundled demo sample: one held-out CMU motion, one camera, detector-like 2D + ground truth.

Reproduce (after `posediffusion prepare mocap ... --out DATA --name cmu --seed 0`):

    python tools/make_demo_sample.py --data DATA --motion 005_08_cc --subject S11 \
        --out src/posediffusion/assets/sample_keypoints.npz

The motion belongs to a test subject of the split, so the bundled model never saw it in training.
"""

from __future__ import annotations

import argparse

import numpy as np

from posediffusion.camera import image_coordinates
from posediffusion.data.h36m import load_h36m
from posediffusion.io_utils import save_npz_atomic

CREDIT = ("The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with "
          "funding from NSF EIA-0196217.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by `posediffusion prepare mocap`")
    parser.add_argument("--name", default="cmu")
    parser.add_argument("--motion", default="005_08_cc")
    parser.add_argument("--subject", default="S11")
    parser.add_argument("--camera", default="54138969")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sequences = load_h36m(args.data, name=args.name, keypoints="det", subjects=[args.subject],
                          actions=[args.motion])
    (seq,) = [s for s in sequences if s.camera_id == args.camera]
    w, h = seq.camera["res_w"], seq.camera["res_h"]
    save_npz_atomic(
        args.out,
        keypoints=image_coordinates(seq.keypoints_2d, w, h).astype(np.float32),  # (F, 17, 2) px
        image_size=np.array([w, h]),
        ground_truth=seq.pose_3d.astype(np.float32),  # (F, 17, 3) m, camera frame, root-relative
        fps=np.float32(seq.fps),
        description=np.array(f"CMU motion {args.motion} ({args.subject}, held out), camera {args.camera}, "
                             f"detector-like 2D noise from `prepare mocap`. {CREDIT}"),
    )
    print(f"wrote {args.out}: {seq.num_frames} frames")


if __name__ == "__main__":
    main()
