"""`posediffusion prepare <source>`: build datasets in the Human3.6M file layout (sources: ``mocap``)."""

from __future__ import annotations

import argparse

HELP = "prepare a dataset in the Human3.6M layout (sources: mocap)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    mocap = sources.add_parser("mocap", help="CMU mocap npz -> synthetic 4-camera Human3.6M-layout dataset",
                               description="Place each mocap motion in front of a Human3.6M subject's "
                                           "4 cameras; write data_3d/data_2d (gt, det) npz and a split.")
    mocap.add_argument("--input", required=True, help="mocap npz: motion -> (F, 17, 3) mm, world Z up")
    mocap.add_argument("--unit", choices=("mm", "m"), default="mm",
                       help="unit of the input positions (default mm; checked against bone lengths)")
    mocap.add_argument("--cameras", default=None,
                       help="h36m_cameras.json (default: the copy bundled with the package)")
    mocap.add_argument("--out", required=True, help="output folder")
    mocap.add_argument("--name", default="cmu", help="dataset name used in the file names (default: cmu)")
    mocap.add_argument("--seed", type=int, default=0, help="seed of split, placement and noise (default: 0)")
    mocap.add_argument("--motions", default=None, help="comma-separated subset of motion names")


def run(args: argparse.Namespace) -> int:
    if args.source == "mocap":
        return _run_mocap(args)
    raise ValueError(f"unknown prepare source '{args.source}'")


def _run_mocap(args: argparse.Namespace) -> int:
    from posediffusion.data.h36m import bundled_cameras_path
    from posediffusion.data.mocap import TEST_SUBJECTS, prepare_mocap
    from posediffusion.io_utils import check_output_folder

    if not 0 <= args.seed < 2**64:
        raise ValueError(f"--seed {args.seed}: must be a non-negative integer below 2**64")
    check_output_folder(args.out, flag="--out")
    cameras = args.cameras or bundled_cameras_path()
    motions = None if args.motions is None else [m.strip() for m in args.motions.split(",") if m.strip()]
    result = prepare_mocap(args.input, cameras, args.out, name=args.name, seed=args.seed,
                           motions=motions, unit=args.unit)
    print(f"{'subject':8s} {'split':5s} {'motions':>7s} {'frames':>7s}")
    for subject, frames in result.frames_per_subject.items():
        count = sum(s == subject for s in result.subjects.values())
        side = "test" if subject in TEST_SUBJECTS else "train"
        print(f"{subject:8s} {side:5s} {count:7d} {frames:7d}")
    test = sum(f for s, f in result.frames_per_subject.items() if s in TEST_SUBJECTS)
    print(f"{'total':8s} {'':5s} {len(result.subjects):7d} {result.total_frames:7d}  "
          f"(test {test} frames, {test / max(1, result.total_frames):.1%})")
    for path in result.paths.values():
        print(f"wrote {path}")
    return 0
