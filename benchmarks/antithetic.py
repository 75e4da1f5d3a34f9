"""Antithetic hypothesis pairs against independent hypotheses: P-Agg MPJPE by K, paired over sampler seeds.

Why (``steps_decomposition.py``): with independent hypotheses the P-Agg error behaves as
``E_H^2 = b^2 + s^2 / H``: more DDIM steps lower the error of the hypotheses' mean ``b`` but widen their
spread ``s``, which averaging H hypotheses only removes as ``s^2 / H``. Antithetic pairs (the sampler's
noise n for one hypothesis, -n for its partner; ``ddim_sample(antithetic=True)``) leave every hypothesis a
draw of the same sampler but cancel the pair's deviations to first order in the average.

**Decision rule (written before the first run, 2026-12-01):** on the validation takes (``--split
validation``: the takes ``train`` holds out of S1-S8; det 2D, camera 54138969, first 240 frames), seeds
0, 1, 2, flip on, eta 1, settings H=5 x K in {1, 2, 5, 10} and H=20, K=5 (``lift --accurate``), antithetic
pairs become the sampler's default (``DiffusionConfig.antithetic``) if (a) at H=5 the seed-mean P-Agg MPJPE
of every K in {2, 5, 10} is at most K=1's plus the std over seeds of the paired (K - K=1) difference, and
(b) no setting's seed-mean paired difference (antithetic - independent) is above zero by more than 2x its
std over seeds. The test split is reported, not used.

    OMP_NUM_THREADS=1 python benchmarks/antithetic.py --split validation --name antithetic_validation
    OMP_NUM_THREADS=1 python benchmarks/antithetic.py --split test --name antithetic_test

Writes ``<name>.json`` and ``<name>.md`` in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from posediffusion.io_utils import write_text_atomic  # noqa: E402
from speed_accuracy import Setting, load_test, sample_p_agg, score  # noqa: E402

SETTINGS = ((5, 1), (5, 2), (5, 5), (5, 10), (20, 5))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--data-dir", default="/work/data_cmu")
    p.add_argument("--split", choices=("test", "validation"), default="validation")
    p.add_argument("--camera", default="54138969")
    p.add_argument("--frames", type=int, default=240, help="first N frames of every sequence")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--settings", default=",".join(f"{h}:{k}" for h, k in SETTINGS), metavar="H:K[,H:K]")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    p.add_argument("--name", default="antithetic_validation")
    args = p.parse_args(argv)
    args.stride, args.max_sequences, args.keypoints = None, None, "det"
    return args


def summarise(rows: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """Per (H, K): seed means of both samplers, the paired difference (antithetic - independent) and the
    paired difference to K=1 of the same H and sampler (mean and std over seeds, ddof 1)."""
    by = {(r["hypotheses"], r["steps"], r["antithetic"], r["seed"]): r["mpjpe"] for r in rows}

    def stats(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    out = []
    for h, k in sorted({(r["hypotheses"], r["steps"]) for r in rows}):
        record: dict[str, Any] = {"hypotheses": h, "steps": k}
        for anti, label in ((False, "independent"), (True, "antithetic")):
            record[label] = round(stats([by[h, k, anti, s] for s in seeds])[0], 2)
            if (h, 1, anti, seeds[0]) in by:
                mean, std = stats([by[h, k, anti, s] - by[h, 1, anti, s] for s in seeds])
                record[f"{label}_vs_k1"] = [round(mean, 2), round(std, 2)]
        mean, std = stats([by[h, k, True, s] - by[h, k, False, s] for s in seeds])
        record["antithetic_minus_independent"] = [round(mean, 2), round(std, 2)]
        out.append(record)
    return out


def decide(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """The pre-registered rule of the module docstring (meaningful on the validation split)."""
    steps_ok = all(r["antithetic_vs_k1"][0] <= r["antithetic_vs_k1"][1] for r in summary
                   if r["hypotheses"] == 5 and r["steps"] > 1 and "antithetic_vs_k1" in r)
    no_harm = all(r["antithetic_minus_independent"][0] <= 2 * r["antithetic_minus_independent"][1]
                  for r in summary)
    return {"a_steps_not_worse_than_k1_at_h5": steps_ok, "b_no_setting_worse": no_harm,
            "adopt": steps_ok and no_harm}


def markdown(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    lines = [f"Antithetic hypothesis pairs vs independent hypotheses: `{s['checkpoint']}`, {s['split']} "
             "split, "
             f"det 2D, camera {s['camera']}, first {s['frames']} frames ({s['frames_total']} frames, "
             f"{s['sequences']} takes), flip on, eta 1, P-Agg MPJPE (mm, mean over actions), seeds "
             f"{', '.join(map(str, s['seeds']))}; differences paired by seed: mean +- std (ddof 1).", "",
             "| H | K | independent | antithetic | antithetic - independent | independent: K - K=1 "
             "| antithetic: K - K=1 |", "|---|---|---|---|---|---|---|"]
    def pm(r: dict[str, Any], key: str) -> str:
        return f"{r[key][0]:+.2f} +- {r[key][1]:.2f}" if key in r else ""

    for r in payload["summary"]:
        lines.append(f"| {r['hypotheses']} | {r['steps']} | {r['independent']:.2f} | {r['antithetic']:.2f} | "
                     f"{pm(r, 'antithetic_minus_independent')} | {pm(r, 'independent_vs_k1')} | "
                     f"{pm(r, 'antithetic_vs_k1')} |")
    d = payload["decision"]
    lines += ["", f"Rule (module docstring; decides on the validation split only): (a) steps not worse than "
              f"K=1 at H=5: {d['a_steps_not_worse_than_k1_at_h5']}; (b) no setting worse: "
              f"{d['b_no_setting_worse']}; adopt: **{d['adopt']}**"
              + ("" if s["split"] == "validation" else " (test split: reported, not used)") + ".", "",
              f"`{payload['command']}` ({payload['cpu_seconds']:.0f} CPU-s)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.pin_threads(1)
    from posediffusion.lift import load_lifter

    model, source = load_lifter(args.checkpoint)
    model.eval()
    sequences = load_test(args, "det")
    seeds = [int(v) for v in args.seeds.split(",")]
    pairs = [tuple(int(v) for v in item.split(":")) for item in args.settings.split(",")]
    cpu0 = time.process_time()
    rows = []
    for seed in seeds:
        for h, k in pairs:
            for anti in (False, True):
                estimates, _, _ = sample_p_agg(model, sequences, Setting(h, k, True, 1.0), args, seed,
                                               antithetic=anti)
                rows.append({"hypotheses": h, "steps": k, "antithetic": anti, "seed": seed,
                             **score(estimates, sequences)})
                print(f"seed {seed} H={h} K={k} antithetic={anti}: {rows[-1]['mpjpe']:.2f} mm", flush=True)
    summary = summarise(rows, seeds)
    payload = {"settings": {"checkpoint": source, "split": args.split, "camera": args.camera,
                            "frames": args.frames, "seeds": seeds, "flip": True, "eta": 1.0,
                            "sequences": len(sequences), "frames_total": sum(s.num_frames for s in sequences),
                            "sequence_names": [s.name for s in sequences]},
               "rows": rows, "summary": summary, "decision": decide(summary),
               "machine": common.machine_info(), "command": common.command_line(),
               "cpu_seconds": round(time.process_time() - cpu0, 1)}
    out = Path(args.out_dir)
    common.write_json(out / f"{args.name}.json", payload)
    text = markdown(payload)
    write_text_atomic(out / f"{args.name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
