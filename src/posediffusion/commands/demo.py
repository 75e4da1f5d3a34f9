"""`posediffusion demo`: lift the bundled sample with the bundled checkpoint (placeholder until it ships)."""

from __future__ import annotations

import argparse

HELP = "lift the bundled sample keypoints with the bundled CPU model and report its accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")


def run(args: argparse.Namespace) -> int:
    print("The bundled demo model is not shipped yet (issue: in-the-wild lifting and demo).\n"
          "Available now: `posediffusion prepare mocap ...` and the Python API; see README.md.")
    return 0
