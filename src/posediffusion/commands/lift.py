"""`posediffusion lift INPUT --out OUT.npz`: lift a 2D keypoint file of any length to 3D."""

from __future__ import annotations

import argparse
import sys

HELP = "lift a 2D keypoint file (COCO/Halpe/OpenPose/MediaPipe JSON, npz, csv) to 3D"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posediffusion.data.keypoint_formats import FORMATS  # torch-free, so --help stays fast

    parser.add_argument("input", help="keypoint file, or a folder of OpenPose *_keypoints.json files")
    parser.add_argument("--out", required=True, help="output npz (pose_3d, uncertainty, keypoints_2d, ...)")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="input format")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="video size in pixels (required unless the file stores it)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--hypotheses", "-num_proposals", type=int, default=5, help="H samples (default 5)")
    parser.add_argument("--steps", "-sampling_timesteps", type=int, default=5,
                        help="K DDIM steps (default 5)")
    parser.add_argument("--aggregation", choices=("p-agg", "j-agg", "pose", "joint"), default="p-agg",
                        metavar="{p-agg,j-agg}",
                        help="p-agg = P-Agg, mean of hypotheses (default); j-agg = J-Agg without a camera "
                             "(weak perspective); the old names pose and joint still work")
    parser.add_argument("--no-flip", action="store_true", help="disable flip test-time augmentation")
    parser.add_argument("--all-hypotheses", action="store_true", help="also store all hypotheses")
    parser.add_argument("--min-confidence", type=float, default=0.3, help="below this a joint is missing")
    parser.add_argument("--person", type=int, default=None, help="person index per frame (default: best)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write JSON")
    parser.add_argument("--csv", default=None, metavar="PATH", help="also write CSV (frame,joint,x,y,z,unc)")
    parser.add_argument("--render", default=None, metavar="OUT.gif|.mp4", help="also render an animation")


def run(args: argparse.Namespace) -> int:
    from posediffusion.lift import lift_file

    result = lift_file(
        args.input, checkpoint=args.checkpoint, format=args.format,
        image_size=tuple(args.image_size) if args.image_size else None,
        min_confidence=args.min_confidence, person=args.person, device=args.device,
        hypotheses=args.hypotheses, steps=args.steps, flip=not args.no_flip, aggregation=args.aggregation,
        keep_hypotheses=args.all_hypotheses, seed=args.seed, progress=sys.stderr.isatty(),
    )
    written = [result.save(args.out)]
    if args.json:
        written.append(result.save_json(args.json))
    if args.csv:
        written.append(result.save_csv(args.csv))
    if args.render:
        from posediffusion.render import render_animation

        written.append(render_animation(result.keypoints_2d, result.pose_3d, args.render,
                                        uncertainty=result.uncertainty, fps=result.fps,
                                        image_size=result.image_size, title="posediffusion lift"))
    filled = int(result.filled.sum()) if result.filled is not None else 0
    print(f"lifted {len(result.pose_3d)} frames ({result.settings['aggregation']}, "
          f"H={args.hypotheses}, K={args.steps}, flip={not args.no_flip}); {filled} missing joints filled")
    for path in written:
        print(f"wrote {path}")
    return 0
