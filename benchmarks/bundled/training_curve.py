"""The bundled model's training curve: its run's ``log.csv`` copied here, drawn and tabulated.

``posediffusion train`` logs one row per epoch (and per ``--val-every-steps``): the step, learning rate, the
epoch's mean training loss (mm, on camera-augmented windows with joint dropout) and the validation MPJPE
(mm: the validation takes of the training subjects, Human3.6M camera views, det 2D, P-Agg of H=1, K=2, the
first 128 windows; EMA weights). Rows are written by the run, this script only reads them.

    cp RUN/log.csv benchmarks/bundled/retrain_log.csv
    python benchmarks/bundled/training_curve.py      # -> retrain_curve.png, retrain_curve.md
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a run's log.csv with a validation score (ends of epochs and every --val-every-steps),
    as numbers, by step; a step logged twice keeps its last row."""
    with path.open() as f:
        by_step = {int(r["global_step"]): r for r in csv.DictReader(f) if r["selection_mpjpe_mm"]}
    rows = [by_step[step] for step in sorted(by_step)]
    return [{"epoch": int(r["epoch"]), "step": int(r["global_step"]), "lr": float(r["lr"]),
             "loss_mm": 1000 * float(r["train_loss_m"]), "val_mm": float(r["selection_mpjpe_mm"])}
            for r in rows]


def markdown(rows: list[dict[str, float]], every: int) -> str:
    lines = ["| step | epoch | learning rate | training loss (mm) | validation MPJPE (mm) |",
             "|---|---|---|---|---|"]
    marks, next_mark = [], 0
    for r in rows:
        if r["step"] >= next_mark:
            marks.append(r)
            next_mark = (r["step"] // every + 1) * every
    if marks[-1] is not rows[-1]:
        marks.append(rows[-1])
    for r in marks:
        lines.append(f"| {r['step']:,} | {r['epoch']} | {r['lr']:.2e} | {r['loss_mm']:.1f} | "
                     f"{r['val_mm']:.1f} |")
    best = min(rows, key=lambda r: (r["val_mm"], -r["step"]))  # a tie goes to the later step, as in train
    lines += ["", f"Best validation MPJPE {best['val_mm']:.2f} mm at step {best['step']:,} "
                  f"(epoch {best['epoch']})."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["val_mm"] for r in rows], label="validation MPJPE (H=1, K=2, EMA)")
    ax.plot(steps, [r["loss_mm"] for r in rows], label="training loss (epoch mean)")
    ax.set_xlabel("optimisation step (16 windows)")
    ax.set_ylabel("mm")
    ax.set_ylim(0, min(300, max(r["val_mm"] for r in rows) * 1.05))
    ax.grid(alpha=0.3)
    lr = ax.twinx()
    lr.plot(steps, [r["lr"] for r in rows], color="grey", linestyle=":", label="learning rate")
    lr.set_ylabel("learning rate")
    handles = ax.get_legend_handles_labels()[0] + lr.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper right")
    ax.set_title("bundled model: small, camera augmentation + joint dropout, 2 processes")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", default=str(HERE / "retrain_log.csv"))
    p.add_argument("--every", type=int, default=1000, help="table row every N steps")
    args = p.parse_args()
    rows = read_log(Path(args.log))
    if not rows:
        raise SystemExit(f"{args.log}: no epoch rows with a validation score")
    (HERE / "retrain_curve.md").write_text(markdown(rows, args.every))
    plot(rows, HERE / "retrain_curve.png")
    print(markdown(rows, args.every))


if __name__ == "__main__":
    main()
