"""`posediffusion prepare <source>`: build datasets in the Human3.6M file layout.

Sources: ``mocap`` (an npz of Human3.6M-17 motions, ``data/mocap.py``) and ``bvh`` (BVH files of any rig,
converted by ``data/bvh.py`` + ``data/bvh_mapping.py`` and then prepared like ``mocap``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posediffusion.data.mocap import PreparedMocap

HELP = "prepare a dataset in the Human3.6M layout (sources: mocap, bvh)"
#: --licence default: say plainly that nobody checked.
UNKNOWN_LICENCE = "unknown — check the source's terms"


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
    _add_bvh_arguments(sources)


def _add_bvh_arguments(sources: argparse._SubParsersAction) -> None:
    from posediffusion.data.bvh_mapping import DEFAULT_FPS, PRESET_NAMES, UNITS_MM

    bvh = sources.add_parser("bvh", help="BVH motion capture (any rig) -> the same dataset as 'mocap'",
                             description="Convert BVH files (any rig: presets cmu, cmu-mb, mixamo, generic, "
                                         "or a JSON mapping) to Human3.6M-17 joints in mm, Z up, then place, "
                                         "project and split them as 'prepare mocap' does. Motion name = file "
                                         "stem. See docs/formats.md (BVH import).")
    bvh.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER",
                     help=".bvh files and folders (searched recursively for *.bvh)")
    bvh.add_argument("--out", required=True, help="output folder")
    bvh.add_argument("--name", required=True, help="dataset name used in the file names")
    bvh.add_argument("--mapping", default=None, metavar="PRESET|FILE",
                     help=f"rig preset ({', '.join(PRESET_NAMES)}) or a JSON mapping file "
                          "(default: the first preset whose joints all exist, per file)")
    bvh.add_argument("--fps", type=float, default=DEFAULT_FPS,
                     help=f"frame rate of the dataset; motions are resampled linearly (default "
                          f"{DEFAULT_FPS:g})")
    bvh.add_argument("--unit", choices=("auto", *UNITS_MM), default=None,
                     help="length unit of the BVH files (default: the mapping's; auto = from the thigh "
                          "length; cmu = 1/0.45 inch, the CMU conversions' unit)")
    bvh.add_argument("--licence", default=UNKNOWN_LICENCE,
                     help=f"licence of the sources, recorded per motion (default: '{UNKNOWN_LICENCE}')")
    bvh.add_argument("--test-motions", default=None, metavar="NAMES",
                     help="comma-separated motions for the test subjects S9/S11, all others train; '' or "
                          "none = all train (default: the automatic 20 %% split of 'prepare mocap'; a "
                          "single motion goes to train)")
    bvh.add_argument("--cameras", default=None,
                     help="h36m_cameras.json (default: the copy bundled with the package)")
    bvh.add_argument("--seed", type=int, default=0, help="seed of split, placement and noise (default: 0)")


def run(args: argparse.Namespace) -> int:
    if args.source == "mocap":
        return _run_mocap(args)
    if args.source == "bvh":
        return _run_bvh(args)
    raise ValueError(f"unknown prepare source '{args.source}'")


def _run_mocap(args: argparse.Namespace) -> int:
    from posediffusion.data.h36m import bundled_cameras_path
    from posediffusion.data.mocap import prepare_mocap
    from posediffusion.io_utils import check_output_folder

    if not 0 <= args.seed < 2**64:
        raise ValueError(f"--seed {args.seed}: must be a non-negative integer below 2**64")
    check_output_folder(args.out, flag="--out")
    cameras = args.cameras or bundled_cameras_path()
    motions = None if args.motions is None else [m.strip() for m in args.motions.split(",") if m.strip()]
    result = prepare_mocap(args.input, cameras, args.out, name=args.name, seed=args.seed,
                           motions=motions, unit=args.unit)
    _print_summary(result)
    return 0


def _run_bvh(args: argparse.Namespace) -> int:
    import hashlib

    from posediffusion.data.bvh_mapping import load_bvh_motions
    from posediffusion.data.h36m import bundled_cameras_path
    from posediffusion.data.mocap import TEST_SUBJECTS, check_name_and_seed, prepare_motions
    from posediffusion.io_utils import check_output_folder

    check_name_and_seed(args.name, args.seed)  # before the (possibly long) conversion
    check_output_folder(args.out, flag="--out")
    test = args.test_motions
    test_motions = None if test is None else [m.strip() for m in test.split(",")
                                               if m.strip() and m.strip().lower() != "none"]
    converted = load_bvh_motions(args.inputs, args.mapping, args.unit, args.fps)
    sources = {name: {"path": str(path), "licence": args.licence,
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **bvh.describe()}
               for name, (path, bvh) in converted.items()}
    for name, info in sources.items():
        print(f"{name}: {info['path']}: {info['source_frames']} frames at {info['source_fps']:g} fps -> "
              f"{info['frames']} at {info['fps']:g} fps (mapping {info['mapping']}, unit {info['unit']}, "
              f"{info['up_axis'].upper()} up)")
    result = prepare_motions({n: b.positions_mm for n, (_, b) in converted.items()},
                             {n: n for n in converted}, args.cameras or bundled_cameras_path(), args.out,
                             name=args.name, seed=args.seed, label=str(args.inputs[0]), fps=args.fps,
                             test_motions=test_motions, sources=sources, credit=None,
                             source=f"BVH motion capture prepared by posediffusion prepare bvh "
                                    f"(name={args.name}, seed={args.seed}); see 'sources'")
    _print_summary(result)
    if not any(result.frames_per_subject.get(s) for s in TEST_SUBJECTS):
        print("note: no motion on the test subjects (S9, S11); choose some with --test-motions")
    return 0


def _print_summary(result: PreparedMocap) -> None:
    from posediffusion.data.mocap import TEST_SUBJECTS

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
