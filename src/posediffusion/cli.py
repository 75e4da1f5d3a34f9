"""The ``posediffusion`` command line: one entry point, one module per subcommand.

Each module in ``posediffusion.commands`` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports happen inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from posediffusion import __version__

#: subcommand -> module under posediffusion.commands
COMMANDS = {
    "demo": "demo",
    "prepare": "prepare",
    "train": "train",
    "evaluate": "evaluate",
    "eval-3dhp": "eval_3dhp",
    "lift": "lift",
    "render": "render",
    "video": "video",
}


def _available() -> dict[str, object]:
    modules = {}
    for name, module in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"posediffusion.commands.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"posediffusion.commands.{module}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posediffusion",
        description="PoseDiffusion+: lift 2D keypoint sequences to 3D human pose with diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        # Bad input: one clear line, no traceback. Programming errors still raise.
        print(f"posediffusion {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
