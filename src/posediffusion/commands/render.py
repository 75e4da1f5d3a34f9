"""`posediffusion render PRED.npz --out OUT.gif|.mp4`: animate a lifted sequence (2D input beside 3D)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

HELP = "render the 2D input and the 3D prediction of a `posediffusion lift` npz as a gif or mp4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prediction", help="npz written by `posediffusion lift` (keypoints_2d, pose_3d, ...)")
    parser.add_argument("--out", required=True, help="output animation, .gif or .mp4")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the sequence (default: the file's 'fps', else 50)")
    parser.add_argument("--max-frames", type=int, default=None, help="render at most N frames")
    parser.add_argument("--stride", type=int, default=1, help="render every S-th frame (default 1)")
    parser.add_argument("--no-uncertainty", action="store_true",
                        help="do not draw per-joint uncertainty even if the file has it")
    parser.add_argument("--title", default=None, help="figure title (default: the file name)")


def run(args: argparse.Namespace) -> int:
    from posediffusion.aggregate import hypothesis_spread
    from posediffusion.io_utils import check_output_path
    from posediffusion.render import load_prediction, render_animation

    check_output_path(args.out, flag="--out", suffixes=(".gif", ".mp4"))
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise ValueError(f"--fps {args.fps}: must be a finite positive number")
    if args.stride < 1:
        raise ValueError(f"--stride {args.stride}: must be at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames {args.max_frames}: must be at least 1")
    data = load_prediction(args.prediction)
    uncertainty = None
    if not args.no_uncertainty:
        uncertainty = data.get("uncertainty")
        if uncertainty is None and "hypotheses" in data:
            uncertainty = hypothesis_spread(data["hypotheses"], center=data["pose_3d"])  # (F, 17)
    fps = args.fps if args.fps is not None else float(data["fps"].reshape(-1)[0]) if "fps" in data else 50.0
    out = render_animation(
        data["keypoints_2d"], data["pose_3d"], args.out,
        ground_truth=data.get("ground_truth"), uncertainty=uncertainty, fps=fps,
        image_size=tuple(int(v) for v in data["image_size"]),
        title=args.title or Path(args.prediction).stem, max_frames=args.max_frames, stride=args.stride,
    )
    print(f"wrote {out}")
    return 0
