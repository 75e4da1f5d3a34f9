"""Why more DDIM steps can raise the P-Agg error: the hypotheses' mean error and their spread, per K.

Reads finished ``speed_accuracy.py`` results only (no sampling). P-Agg averages H hypotheses drawn
independently for the same 2D. If each hypothesis is the posterior-mean estimate ``m`` plus a zero-mean
deviation of variance ``s^2`` (per joint coordinate, summed over x, y, z), the squared error of their
average is ``b^2 + s^2 / H``, where ``b`` is the error of ``m`` itself (the error with infinitely many
hypotheses). With the (mean-per-joint) error ``E_H`` of H hypotheses standing in for its root mean square:

    E_H^2 = b^2 + s^2 / H.

For every sampler setting (K steps, flip, eta) the two unknowns are fitted to the H = 1 and H = 20 rows
(``b`` = error of the hypotheses' mean, ``s`` = their spread) and the H = 5 row, not used by the fit, is
predicted as a check of the model. Then the effect of steps splits in two: what they do to the mean
(``b(K) - b(1)``) and what they add as spread, which P-Agg with H hypotheses pays as ``s^2 / H``.

    python benchmarks/steps_decomposition.py benchmarks/results/speed_accuracy.json \
        benchmarks/results/speed_accuracy_validation.json --out benchmarks/results/steps_decomposition

Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from posediffusion.io_utils import write_text_atomic  # noqa: E402

FIT_H = (1, 20)
CHECK_H = 5


def fit_mean_and_spread(error_by_h: dict[int, float], fit_h: tuple[int, int] = FIT_H) -> tuple[float, float]:
    """``(b, s)`` with ``E_H^2 = b^2 + s^2 / H`` through the two points ``fit_h`` (mm).

    A negative fitted variance (more hypotheses worse) is returned as a negative ``s``: -sqrt(|s^2|).
    """
    h1, h2 = fit_h
    e1, e2 = error_by_h[h1] ** 2, error_by_h[h2] ** 2
    s2 = (e1 - e2) / (1 / h1 - 1 / h2)
    b2 = e2 - s2 / h2
    return math.sqrt(b2), math.copysign(math.sqrt(abs(s2)), s2)


def predict(b: float, s: float, hypotheses: int) -> float:
    """``E_H`` from the fitted mean error ``b`` and spread ``s`` (signed as :func:`fit_mean_and_spread`'s)."""
    return math.sqrt(b * b + math.copysign(s * s, s) / hypotheses)


def decompose(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (K, flip, eta) that has rows for every H of ``FIT_H`` and ``CHECK_H``."""
    table: dict[tuple[int, bool, float], dict[int, float]] = {}
    for row in rows:
        table.setdefault((row["steps"], row["flip"], row["eta"]), {})[row["hypotheses"]] = row["mpjpe"]
    out = []
    for (steps, flip, eta), by_h in sorted(table.items()):
        if not all(h in by_h for h in (*FIT_H, CHECK_H)):
            continue
        b, s = fit_mean_and_spread(by_h)
        out.append({"steps": steps, "flip": flip, "eta": eta,
                    "mpjpe_by_h": {str(h): by_h[h] for h in sorted(by_h)},
                    "mean_error_b": round(b, 2), "spread_s": round(s, 2),
                    f"predicted_h{CHECK_H}": round(predict(b, s, CHECK_H), 2),
                    f"check_h{CHECK_H}_error": round(predict(b, s, CHECK_H) - by_h[CHECK_H], 2)})
    for record in out:  # steps' effect on the mean and on P-Agg, against K = 1 of the same flip / eta
        base = next((r for r in out if r["steps"] == 1 and r["flip"] == record["flip"]), None)
        if base is not None:
            record["mean_vs_k1"] = round(record["mean_error_b"] - base["mean_error_b"], 2)
            record["p_agg_vs_k1_by_h"] = {h: round(record["mpjpe_by_h"][h] - base["mpjpe_by_h"][h], 2)
                                          for h in record["mpjpe_by_h"] if h in base["mpjpe_by_h"]}
    return out


def markdown(payload: dict[str, Any]) -> str:
    lines = [f"Decomposition of P-Agg MPJPE into the hypotheses' mean error b and spread s "
             f"(E_H^2 = b^2 + s^2/H, fitted to H = {FIT_H[0]} and {FIT_H[1]}; H = {CHECK_H} predicted as a "
             "check). Inputs: " + ", ".join(f"`{p}`" for p in payload["inputs"])
             + ". `python benchmarks/steps_decomposition.py`.",
             ""]
    for source in payload["sources"]:
        title = f"**{source['name']}** ({source['split']} split, {source['frames']} frames, det 2D, seed 0)"
        lines += [title, "", "| K | flip | eta | MPJPE H=1 / 5 / 20 | b (H -> inf) | s | H=5 predicted "
                  "(error) | b - b(K=1) | P-Agg - K=1 at H=1 / 5 / 20 |", "|---" * 9 + "|"]
        for r in source["rows"]:
            by_h = r["mpjpe_by_h"]
            diffs = r.get("p_agg_vs_k1_by_h", {})
            lines.append(
                f"| {r['steps']} | {'on' if r['flip'] else 'off'} | {r['eta']:g} | "
                f"{by_h['1']:.1f} / {by_h['5']:.1f} / {by_h['20']:.1f} | {r['mean_error_b']:.1f} | "
                f"{r['spread_s']:.1f} | {r[f'predicted_h{CHECK_H}']:.1f} "
                f"({r[f'check_h{CHECK_H}_error']:+.1f}) | "
                f"{r.get('mean_vs_k1', 0):+.1f} | "
                + " / ".join(f"{diffs.get(h, 0):+.1f}" for h in ("1", "5", "20")) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="speed_accuracy.py JSON results")
    p.add_argument("--out", default=str(common.RESULTS_DIR / "steps_decomposition"),
                   help="output path without suffix")
    args = p.parse_args(argv)
    sources = []
    for path in args.inputs:
        result = common.read_json(path)
        settings = result["settings"]
        frames = settings.get("frames_total") or result["inputs"]["det"]["rows"][0].get("frames")
        sources.append({"name": Path(path).name, "split": settings.get("split", "test"), "frames": frames,
                        "rows": decompose(result["inputs"]["det"]["rows"])})
    payload = {"inputs": [str(Path(p).as_posix()) for p in args.inputs], "model": "E_H^2 = b^2 + s^2 / H",
               "fit_hypotheses": list(FIT_H), "check_hypotheses": CHECK_H, "sources": sources,
               "command": common.command_line()}
    out = Path(args.out)
    common.write_json(out.with_suffix(".json"), payload)
    text = markdown(payload)
    write_text_atomic(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
