"""`posediffusion eval-3dhp`: official MPI-INF-3DHP test scoring of a predictions file."""

from __future__ import annotations

import argparse

HELP = "score MPI-INF-3DHP test predictions with the official protocol (PCK, AUC, MPJPE tables)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt-dir", required=True, help="3DHP test folder holding TS*/annot_data.mat")
    parser.add_argument("--predictions", required=True,
                        help="npz with one (F, 17, 3) array per sequence name (TS1 ..), root-relative; "
                             "F = all frames or only the valid ones")
    parser.add_argument("--out", required=True, help="output folder for sequencewise.csv, activitywise.csv "
                                                     "and summary.json")
    parser.add_argument("--annot", choices=("annot3", "univ_annot3"), default="annot3",
                        help="ground truth to score against (default: annot3, the seed's choice)")
    parser.add_argument("--joint-order", choices=("3dhp", "h36m"), default="3dhp",
                        help="joint order of the predictions (default: 3dhp)")
    parser.add_argument("--unit", choices=("mm", "m"), default="mm",
                        help="unit of the predictions (default: mm)")


def _load_predictions(path: str, joint_order: str, unit: str) -> dict:
    """name -> (F, 17, 3) mm in 3DHP order; ``ValueError`` naming the file for a bad array or unit."""
    from posediffusion.eval_3dhp import check_prediction_array, check_unit, predictions_from_h36m
    from posediffusion.io_utils import read_npz

    predictions = read_npz(path, what="predictions", hint="predictions npz")
    try:
        arrays = {name: check_prediction_array(name, p) for name, p in predictions.items()}
    except ValueError as err:
        raise ValueError(f"{path}: {err} (--joint-order {joint_order})") from err
    if joint_order == "h36m":
        arrays = predictions_from_h36m(arrays, unit=unit)
    else:
        arrays = {name: p * (1000.0 if unit == "m" else 1.0) for name, p in arrays.items()}
    check_unit(arrays, unit, path)
    return arrays


def run(args: argparse.Namespace) -> int:
    from posediffusion.eval_3dhp import (
        evaluate_predictions,
        format_tables,
        load_test_annotations,
        write_report,
    )
    from posediffusion.io_utils import check_output_folder

    check_output_folder(args.out, flag="--out")
    annotations = load_test_annotations(args.gt_dir)
    if not any(seq.valid.any() for seq in annotations.values()):
        raise ValueError(f"--gt-dir {args.gt_dir}: no valid frame to score (valid_frame is 0 in every frame "
                         f"of {', '.join(annotations)})")
    predictions = _load_predictions(args.predictions, args.joint_order, args.unit)
    result = evaluate_predictions(annotations, predictions, annot_key=args.annot)
    paths = write_report(result, args.out)
    print(format_tables(result))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
