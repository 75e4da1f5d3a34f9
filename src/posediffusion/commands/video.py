"""`posediffusion video CLIP.mp4 --out pose3d.npz [--render out.mp4]`: 2D by MediaPipe Pose, then lift."""

from __future__ import annotations

import argparse
import contextlib
import sys

from posediffusion.commands.lift import (
    UNCERTAINTY_NOTE,
    add_lifting_arguments,
    check_options,
    check_outputs,
    inferred_by_text,
    save_result_files,
    scale_options,
    scale_summary,
)

HELP = "lift the person in a video to 3D (2D keypoints by MediaPipe Pose: pip install -e '.[video]')"

#: output flag -> accepted suffixes
OUTPUTS = {"--out": (".npz",), "--json": (".json",), "--csv": (".csv",), "--render": (".gif", ".mp4"),
           "--save-2d": (".npz",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file (mp4, mov, avi, webm...: anything ffmpeg reads); one "
                                      "person is tracked (MediaPipe's legacy Pose)")
    parser.add_argument("--out", required=True,
                        help="output npz (pose_3d, uncertainty, keypoints_2d, fps, ...)")
    parser.add_argument("--render", default=None, metavar="OUT.mp4|.gif",
                        help="also render the video frames with the 2D keypoints beside the 3D prediction")
    parser.add_argument("--save-2d", default=None, metavar="PATH.npz",
                        help="also save MediaPipe's 33 landmarks (npz that `posediffusion lift` reads)")
    add_lifting_arguments(parser, min_confidence_help=(
        "landmarks with MediaPipe visibility below this are missing (filled over time); default: lift's "
        "MediaPipe default (docs/in-the-wild.md)"), fps_help=(
        "frame rate, overriding the video's metadata (needed when it states none)"))


def run(args: argparse.Namespace) -> int:
    from posediffusion.io_utils import atomic_path
    from posediffusion.video import MediaPipeUnavailable, lift_video, render_lifted_video

    check_options(args)
    outputs = check_outputs(args, OUTPUTS)  # before the (slow) 2D pass and lifting
    progress = sys.stderr.isatty()
    scale, height = scale_options(args)
    try:
        result, landmarks = lift_video(
            args.input, checkpoint=args.checkpoint, device=args.device, min_confidence=args.min_confidence,
            fps=args.fps, progress=progress, hypotheses=args.hypotheses, steps=args.steps,
            flip=args.flip, aggregation=args.aggregation, keep_hypotheses=args.all_hypotheses,
            seed=args.seed, scale=scale, height=height, never_seen=args.never_seen, stride=args.stride)
    except MediaPipeUnavailable as err:
        raise ValueError(str(err)) from err  # a one-line error (exit 2), not a traceback
    # All or nothing: every output goes to a temporary file; they are renamed only once all are complete.
    with contextlib.ExitStack() as stack:
        tmp = {flag: stack.enter_context(atomic_path(path, flag=flag)) for flag, path in outputs.items()}
        save_result_files(result, tmp)
        if "--save-2d" in tmp:
            landmarks.save(tmp["--save-2d"])
        if "--render" in tmp:
            render_lifted_video(args.input, result, tmp["--render"], title="posediffusion video",
                                progress=progress)
    frames, found = len(result.pose_3d), int(landmarks.detected.sum())
    w, h = result.image_size
    print(f"{args.input}: {frames} frames, {w}x{h}, {result.fps:.4g} fps "
          f"({result.settings['video']['fps_source']}); a person found in {found} of them")
    inferred = result.settings["inferred_joints"]
    print(f"lifted {frames} frames ({result.settings['aggregation']}, H={args.hypotheses}, K={args.steps}, "
          f"flip={args.flip}); {int(result.filled.sum())} missing joints filled"
          + (f"; never seen, INFERRED {inferred_by_text(result)} (not measured): {', '.join(inferred)}"
             if inferred else ""))
    print(scale_summary(result))
    if args.hypotheses < 2:
        print(UNCERTAINTY_NOTE)
    for path in outputs.values():
        print(f"wrote {path}")
    return 0
