"""Learning curves: MPJPE (P-Agg) against training CPU-minutes, diffusion models and the TCN reference.

Reads finished results only (no training, no evaluation):

- diffusion runs: ``accuracy_<variant>.json`` written by ``benchmarks/accuracy.py``, in every ``--results``
  folder and its ``seed<N>/`` sub-folders (``--runs-results`` is the same option, for extra folders such as
  separate single-budget runs). A result with a ``learning_curve`` (``--snapshot-minutes``) gives its snapshot
  points and its last checkpoint, scored on the curve's 2D (``accuracy.py --curve-input``, det
  unless recorded otherwise) with the curve's H/K; every result also gives its run-end
  point per evaluated 2D input (``evaluations.<2D>``: the main H/K, usually 5/5) at the run's training
  CPU-minutes. Scores: P-Agg MPJPE pooled over the test frames (``scores["P-Agg"]["mpjpe"]["all"]``; the
  curve's ``mpjpe`` is the same field). Seeds (``command_args.seed``) of the same model, recipe, 2D input,
  sampling and point are pooled: mean +- std (ddof 1) over seeds. Missing seeds / variants are skipped.
- TCN reference: ``--tcn-dir`` (``benchmarks/results/tcn``): ``tcn_*.json`` (trained and tested on the same
  2D) and ``reeval_*.json`` (saved checkpoints re-scored on another 2D input). Score:
  ``scores.first240.pooled_frames_mpjpe``: MPJPE pooled over the same 4,237 frames (camera 54138969, first
  240 frames of each test sequence), of its deterministic prediction with flip averaging; one output per
  frame, so nothing to aggregate (P-Agg of identical hypotheses is that output).

    python benchmarks/learning_curves.py --results /work/exp_out/ablation/results --out-dir benchmarks/results

Writes ``learning_curves.json`` (every point), ``learning_curves.md`` (the table and its notes) and
``learning_curves.png`` (MPJPE vs CPU-minutes, log x, seed std error bars, TCN dashed) in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MODEL_NAMES = {"full": "full model (paper design)",
               "improved": "improved (2026-11-30 default design; p=9 = today's)",
               "d3dp": "D3DP-style baseline"}
#: Training-recipe fields of ``command_args`` that make two diffusion runs different models.
RECIPE_FIELDS = ("preset", "batch_size", "lr", "lr_schedule", "lr_decay", "ema_decay", "set", "budget_clock",
                 "train_stride", "val_fraction")
TCN_FIELD = "scores.first240.pooled_frames_mpjpe"
DIFFUSION_FIELD = 'learning_curve[].mpjpe / evaluations.<2D>.scores["P-Agg"]["mpjpe"]["all"]'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", action="append", default=[], metavar="DIR",
                   help="accuracy.py result folder (its seed<N>/ sub-folders are read too); repeatable")
    p.add_argument("--runs-results", action="append", default=[], metavar="DIR",
                   help="extra result folders, e.g. separate single-budget runs; repeatable")
    p.add_argument("--tcn-dir", action="append", default=None, metavar="DIR",
                   help="TCN reference results; repeatable (default benchmarks/results/tcn; '' = none)")
    p.add_argument("--host", action="append", default=[], metavar="DIR=NAME",
                   help="name the machine the results under DIR ran on (a result folder or a --tcn-dir): "
                        "shown in the labels and kept apart from other hosts' points; repeatable")
    p.add_argument("--panels", action="store_true",
                   help="one panel per test 2D input (det, gt) in the figure, instead of one plot")
    p.add_argument("--variants", default="full,d3dp",
                   help="diffusion variants to include ('all' = every one)")
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ loading


def result_files(folders: list[str]) -> list[Path]:
    """``accuracy_<variant>.json`` in every folder and its ``seed*/`` sub-folders (each file once)."""
    found: dict[Path, None] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            print(f"warning: {folder}: not a folder, skipped", file=sys.stderr)
            continue
        for directory in [folder, *sorted(d for d in folder.glob("seed*") if d.is_dir())]:
            for path in sorted(directory.glob("accuracy_*.json")):
                if path.stem not in ("accuracy_seeds",):
                    found.setdefault(path.resolve(), None)
    return list(found)


def read(path: Path, warnings: list[str]) -> dict[str, Any] | None:
    try:
        payload = common.read_json(path)
    except (OSError, json.JSONDecodeError) as err:
        warnings.append(f"{path}: unreadable ({err}), skipped")
        return None
    return payload if isinstance(payload, dict) else None


def _minutes(value: float) -> float:
    return round(float(value), 2)


def diffusion_points(path: Path, result: dict[str, Any], warnings: list[str]) -> list[dict[str, Any]]:
    """One raw point (one seed) per learning-curve entry and per run-end evaluation of a result file."""
    variant = result.get("variant")
    args = result.get("command_args") or {}
    training = result.get("training") or {}
    if variant is None or "evaluations" not in result:
        return []
    if not args:
        warnings.append(f"{path}: no command_args (older result), budget/seed assumed from defaults")
    budget = float(args.get("budget_min", 6.5))
    clock = args.get("budget_clock", "cpu")
    if "train_cpu_seconds" in training:
        end_minutes = training["train_cpu_seconds"] / 60
    else:  # reused run or older result: the budget itself
        end_minutes = budget
        warnings.append(f"{path}: no training.train_cpu_seconds, run end placed at its budget {budget:g} min")
    recipe = {key: args.get(key) for key in RECIPE_FIELDS}
    recipe["budget_clock"] = clock
    recipe["val_fraction"] = recipe.get("val_fraction") or None  # 0 = no held-out takes, as older results
    evaluations = result["evaluations"]
    any_eval = next(iter(evaluations.values()), {})
    settings = any_eval.get("settings", {})
    scope = {"camera": args.get("camera", "54138969"), "frames_per_sequence": args.get("eval_frames", 240),
             "frames": any_eval.get("frames")}
    base = {"kind": "diffusion", "variant": variant, "model": MODEL_NAMES.get(variant, variant),
            "train_2d": args.get("train_keypoints", "det"), "recipe": recipe, "scope": scope,
            "seed": args.get("seed", 0), "source": str(path),
            "machine": (result.get("machine") or {}).get("cpu_model")}
    points = []
    curve = result.get("learning_curve") or []
    for entry in curve:
        is_last = entry.get("checkpoint") == "last"
        points.append({**base, "test_2d": entry.get("test_2d", "det"),
                       "series_type": f"curve of {budget:g}-min runs",
                       "point_kind": "run end" if is_last else "snapshot", "run_budget_min": budget,
                       "cpu_minutes": budget if is_last else float(entry["cpu_minutes"]),
                       "cpu_minutes_actual": end_minutes if is_last else float(entry["cpu_minutes"]),
                       "sampling": {"hypotheses": entry.get("hypotheses"),
                                    "steps": entry.get("sampling_steps"), "flip": True,
                                    "eta": settings.get("eta"), "aggregation": "P-Agg"},
                       "mpjpe": float(entry["mpjpe"]), "p_mpjpe": entry.get("p_mpjpe"),
                       "train_steps": entry.get("steps"), "checkpoint": entry.get("checkpoint")})
    for test_2d, evaluation in evaluations.items():
        s = evaluation.get("settings", {})
        score = evaluation["scores"]["P-Agg"]
        points.append({**base, "test_2d": test_2d, "series_type": "run ends", "point_kind": "run end",
                       "run_budget_min": budget, "cpu_minutes": budget, "cpu_minutes_actual": end_minutes,
                       "sampling": {"hypotheses": s.get("hypotheses", args.get("hypotheses")),
                                    "steps": s.get("steps", args.get("steps")), "flip": s.get("flip", True),
                                    "eta": s.get("eta"), "aggregation": "P-Agg"},
                       "mpjpe": float(score["mpjpe"]["all"]), "p_mpjpe": score["p_mpjpe"]["all"],
                       "train_steps": training.get("steps"), "checkpoint": "last",
                       "scope": {**scope, "frames": evaluation.get("frames")}})
    return points


def tcn_points(tcn_dir: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """Raw points of every ``tcn_*.json`` run and ``reeval_*.json`` re-scoring in ``tcn_dir``."""
    points: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(tcn_dir.glob("tcn_*.json")):
        run = read(path, warnings)
        if not run or "points" not in run:
            continue
        runs[run["run"]] = run
        model = run["model"]
        for point in run["points"]:
            score = point["scores"].get("first240")
            if score is None:
                warnings.append(f"{path}: point {point.get('budget_cpu_min')} has no first240 scope, skipped")
                continue
            points.append(tcn_point(run["run"], model, run["data"]["keypoints"], run["data"]["keypoints"],
                                    float(point["budget_cpu_min"]), point["train_cpu_seconds"] / 60,
                                    point["steps"], score, path, run.get("settings", {}).get("seed", 0),
                                    (run.get("machine") or {}).get("cpu_model")))
    for path in sorted(tcn_dir.glob("reeval_*.json")):
        payload = read(path, warnings)
        if not payload or "rows" not in payload:
            continue
        for row in payload["rows"]:
            checkpoint = Path(row["checkpoint"])
            source = runs.get(checkpoint.parent.name)
            match = re.fullmatch(r"cpu([0-9.]+)min", checkpoint.stem)
            score = row["scores"].get("first240")
            if match is None or score is None:
                warnings.append(f"{path}: {checkpoint} not a budget-point checkpoint or no first240, skipped")
                continue
            train_2d = (source["data"]["keypoints"] if source
                        else checkpoint.parent.name.rsplit("_", 1)[-1])
            model = source["model"] if source else {"receptive_field": row.get("receptive_field"),
                                                    "channels": row.get("channels")}
            points.append(tcn_point(checkpoint.parent.name, model, train_2d, payload["test_keypoints"],
                                    float(match.group(1)), row["train_cpu_seconds"] / 60, row["steps"], score,
                                    path, (source or {}).get("settings", {}).get("seed", 0),
                                    (payload.get("machine") or {}).get("cpu_model")))
    return points


def tcn_point(run: str, model: dict[str, Any], train_2d: str, test_2d: str, minutes: float, actual: float,
              steps: int, score: dict[str, Any], path: Path, seed: int, machine: str | None
              ) -> dict[str, Any]:
    """One TCN budget point (one run of one seed)."""
    return {"kind": "tcn", "variant": run, "model": f"TCN RF{model['receptive_field']} C{model['channels']}",
            "train_2d": train_2d, "test_2d": test_2d, "recipe": {}, "series_type": "one run, budget points",
            "point_kind": "budget point", "run_budget_min": None, "cpu_minutes": minutes,
            "cpu_minutes_actual": actual,
            "sampling": {"hypotheses": 1, "steps": None, "flip": True, "eta": None,
                         "aggregation": "none (deterministic; = P-Agg)"},
            "scope": {"camera": "54138969", "frames_per_sequence": 240, "frames": score.get("frames")},
            "mpjpe": float(score["pooled_frames_mpjpe"]), "p_mpjpe": None, "train_steps": steps,
            "checkpoint": f"cpu{minutes:g}min", "seed": seed, "source": str(path), "machine": machine}


# ------------------------------------------------------------------------------------------ aggregation


def series_key(point: dict[str, Any]) -> str:
    fields = ("kind", "variant", "train_2d", "test_2d", "series_type", "sampling", "recipe")
    scope = {k: point["scope"][k] for k in ("camera", "frames_per_sequence")}
    host = {"host": point["host"]} if point.get("host") else {}  # absent: keys as before --host existed
    return json.dumps({**{k: point[k] for k in fields}, "scope": scope, **host}, sort_keys=True, default=str)


def parse_hosts(specs: list[str]) -> list[tuple[Path, str]]:
    """``DIR=NAME`` pairs of ``--host``, longest folder first (the most specific one wins)."""
    hosts = []
    for spec in specs:
        folder, sep, name = spec.partition("=")
        if not sep or not folder or not name:
            raise SystemExit(f"--host {spec!r}: expected DIR=NAME")
        hosts.append((Path(folder).resolve(), name))
    return sorted(hosts, key=lambda h: len(str(h[0])), reverse=True)


def host_of(source: str, hosts: list[tuple[Path, str]]) -> str | None:
    path = Path(source).resolve()
    return next((name for folder, name in hosts if path == folder or folder in path.parents), None)


def aggregate(raw: list[dict[str, Any]], warnings: list[str]) -> list[dict[str, Any]]:
    """Pool the seeds of every (series, CPU-minute point): mean, std (ddof 1), n."""
    actual = "cpu_minutes_actual"
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for point in raw:
        groups[(series_key(point), _minutes(point["cpu_minutes"]))].append(point)
    points = []
    for (key, minutes), members in groups.items():
        members.sort(key=lambda p: (p["seed"], p["source"]))
        seeds = [p["seed"] for p in members]
        if len(set(seeds)) < len(seeds):
            warnings.append(f"{members[0]['model']} at {minutes:g} min: seed(s) repeated across result files "
                            f"{[p['source'] for p in members]}")
        values = np.array([p["mpjpe"] for p in members])
        p_values = [p["p_mpjpe"] for p in members if p["p_mpjpe"] is not None]
        first = members[0]
        points.append({
            "series": key, "kind": first["kind"], "model": first["model"], "variant": first["variant"],
            "train_2d": first["train_2d"], "test_2d": first["test_2d"], "series_type": first["series_type"],
            "point_kind": first["point_kind"], "run_budget_min": first["run_budget_min"],
            "cpu_minutes": minutes,
            actual: {"mean": round(float(np.mean([p[actual] for p in members])), 3),
                     "per_seed": [round(p[actual], 3) for p in members]},
            "seeds": seeds, "n": len(members), "values": [round(float(v), 3) for v in values],
            "mean": round(float(values.mean()), 3),
            "std": round(float(values.std(ddof=1)), 3) if len(values) > 1 else None,
            "p_mpjpe_mean": round(float(np.mean(p_values)), 3) if p_values else None,
            "metric": "MPJPE (mm), P-Agg, pooled over frames",
            "field": TCN_FIELD if first["kind"] == "tcn" else DIFFUSION_FIELD,
            "sampling": first["sampling"], "recipe": first["recipe"],
            "scope": {**first["scope"], "frames": sorted({p["scope"].get("frames") for p in members},
                                                         key=str)},
            "train_steps": [p["train_steps"] for p in members], "sources": [p["source"] for p in members],
            "machines": sorted({str(p["machine"]) for p in members}),
            **({"host": first["host"]} if first.get("host") else {}),
        })
    return sorted(points, key=lambda p: (p["kind"] == "tcn", p["series"], p["cpu_minutes"]))


def series_table(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Series key -> label facts and its points, in display order."""
    varying = {field for field in RECIPE_FIELDS
               if len({json.dumps(p["recipe"].get(field)) for p in points if p["kind"] == "diffusion"}) > 1}
    series: dict[str, dict[str, Any]] = {}
    for point in points:
        fields = ("kind", "model", "variant", "train_2d", "test_2d", "series_type", "sampling", "recipe",
                  "scope")
        entry = series.setdefault(point["series"], {"points": [], **{k: point[k] for k in fields},
                                                    "host": point.get("host")})
        entry["points"].append(point)
    for entry in series.values():
        s = entry["sampling"]
        extra = [f"{f}={entry['recipe'].get(f)}" for f in sorted(varying)
                 if entry["kind"] == "diffusion" and entry["recipe"].get(f) is not None]
        entry["recipe_label"] = ", ".join(extra)
        entry["sampling_label"] = (f"H={s['hypotheses']} K={s['steps']} flip, P-Agg"
                                   if entry["kind"] == "diffusion" else "1 output, flip (= P-Agg)")
        entry["label"] = (f"{entry['model']}{' [' + entry['recipe_label'] + ']' if extra else ''}, "
                          f"{entry['train_2d']}->{entry['test_2d']} 2D, "
                          + (f"{entry['series_type']}, H{s['hypotheses']} K{s['steps']}"
                             if entry["kind"] == "diffusion"
                             else f"budget points, seed {entry['points'][0]['seeds'][0]}")
                          + (f" ({entry['host']})" if entry["host"] else ""))
    order = {"full": 0, "d3dp": 1}
    return dict(sorted(series.items(), key=lambda kv: (
        kv[1]["kind"] == "tcn", order.get(kv[1]["variant"], 2), kv[1]["variant"], kv[1]["host"] or "",
        kv[1]["train_2d"],
        kv[1]["test_2d"], kv[1]["series_type"], str(kv[1]["sampling"]), kv[1]["recipe_label"])))


# ---------------------------------------------------------------------------------------------- outputs


def cell(point: dict[str, Any]) -> str:
    """``mean +- std (n seeds)`` for the diffusion models, the single value for the TCN."""
    if point["kind"] == "tcn":
        return f"{point['mean']:.1f}"
    spread = f" +- {point['std']:.1f}" if point["std"] is not None else ""
    return f"{point['mean']:.1f}{spread} ({point['n']} seed{'s' if point['n'] > 1 else ''})"


def points_label(entry: dict[str, Any]) -> str:
    """What the cells of a row are: snapshots of longer runs, run ends, or TCN budget points."""
    if entry["kind"] == "tcn":
        return f"one run (seed {entry['points'][0]['seeds'][0]}), scored at each budget"
    if entry["series_type"] == "run ends":
        return "run ends (one run per budget)"
    snaps = sorted({p["cpu_minutes"] for p in entry["points"] if p["point_kind"] == "snapshot"})
    budget = entry["series_type"].split()[2]  # "curve of <B>-min runs"
    return (f"**snapshots** at {', '.join(f'{m:g}' for m in snaps)} min of {budget} runs + their end"
            if snaps else f"end of {budget} runs")


def recipe_text(recipe: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in recipe.items() if v is not None)


def markdown(series: dict[str, dict[str, Any]], warnings: list[str]) -> str:
    """The table (rows = model x 2D input x sampling, columns = CPU-minute points present) and its notes."""
    if not series:
        return "No learning-curve points found.\n"
    minutes = sorted({p["cpu_minutes"] for s in series.values() for p in s["points"]})
    head = ["model", "2D train / test", "points", "sampling", *[f"{m:g} min" for m in minutes]]
    lines = ["MPJPE (mm, P-Agg, pooled over the test frames) against training CPU-minutes (one thread). "
             "Diffusion cells: mean +- std over seeds (n seeds); TCN cells: one run.\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in series.values():
        by_minute = {p["cpu_minutes"]: p for p in entry["points"]}
        model = (entry["model"] + (f" [{entry['recipe_label']}]" if entry["recipe_label"] else "")
                 + (f" ({entry['host']})" if entry["host"] else ""))
        row = [model, f"{entry['train_2d']} / {entry['test_2d']}", points_label(entry),
               entry["sampling_label"], *[cell(by_minute[m]) if m in by_minute else "" for m in minutes]]
        lines.append("| " + " | ".join(row) + " |")
    diffusion = [s for s in series.values() if s["kind"] == "diffusion"]
    tcn = [s for s in series.values() if s["kind"] == "tcn"]
    notes = ["", "Notes:", ""]
    if any(s["series_type"].startswith("curve") for s in diffusion):
        notes.append(
            "- **Snapshots are not short runs.** A `snapshots ... of B-min runs` row holds the weights saved "
            "when a run's budget clock (process CPU time since its training started) passed each mark, and "
            "the run's last checkpoint (column B; actual CPU-minutes in the JSON). The learning rate follows "
            "a warm-up + cosine schedule to the END of the run, so the 5-min snapshot of a 25-min run has "
            "had no annealing: it is not what a 5-min run would reach. Snapshots and the run's end are "
            "scored on the row's test 2D with the curve's H/K "
            "(accuracy.py `--curve-input/--curve-hypotheses/--curve-steps`).")
    if any(s["series_type"] == "run ends" for s in diffusion):
        notes.append(
            "- `run ends` rows: the last checkpoint of each run, with the run's main evaluation "
            "(`evaluations.<2D>`); the column is the run's budget (actual training CPU-minutes, data loading "
            "included, in the JSON: `cpu_minutes_actual`).")
    for entry in diffusion:
        s, scope = entry["sampling"], entry["scope"]
        frames = ", ".join(str(f) for f in entry["points"][0]["scope"]["frames"])
        notes.append(
            f"- {entry['label']}: H={s['hypotheses']} hypotheses, K={s['steps']} DDIM steps, eta={s['eta']}, "
            f"flip on, P-Agg (mean of the H root-relative hypotheses), camera {scope['camera']}, first "
            f"{scope['frames_per_sequence']} frames per test sequence ({frames} frames); "
            f"{recipe_text(entry['recipe'])}.")
    if diffusion:
        notes.append(f"- Diffusion field: `{DIFFUSION_FIELD}` (MPJPE pooled over frames).")
    if tcn:
        notes.append(
            "- TCN rows (`benchmarks/tcn_reference.py`, VideoPose3D-style, one run per seed): "
            f"field `{TCN_FIELD}` "
            "(MPJPE pooled over the same frames: camera 54138969, first 240 frames of each of the 20 test "
            "sequences); one deterministic output per frame with flip averaging, so nothing to aggregate "
            "(P-Agg-equivalent). Its lr decays x0.95 per epoch, independent of the budget: each point is "
            "what a run of that budget reaches. `det / gt` = its det-trained checkpoints re-scored on GT 2D "
            "(`reeval_*.json`). Its CPU-minutes count training steps only (data gathering included).")
    frames = {f for s in series.values() for p in s["points"] for f in p["scope"]["frames"] if f is not None}
    if len(frames) > 1:
        notes.append(f"- **Warning: rows scored on different frame sets** ({sorted(frames)} frames): only "
                     "rows with the same frame count are comparable.")
    machines = sorted({m for s in series.values() for p in s["points"] for m in p["machines"]})
    hosts = sorted({s["host"] for s in series.values() if s["host"]})
    if hosts:
        notes.append(f"- Hosts (`--host`): {'; '.join(hosts)}. CPU-minutes compare like for like only "
                     "between rows of the same host.")
    elif len(machines) > 1:
        notes.append(f"- Warning: results from different CPUs ({'; '.join(machines)}): CPU-minutes do not "
                     "transfer between them.")
    notes.append("- Empty cells were not measured (nothing is interpolated). std: over seeds, ddof 1.")
    notes += [f"- warning: {w}" for w in warnings]
    return "\n".join(lines + notes) + "\n"



def plot(series: dict[str, dict[str, Any]], path: Path, panels: bool = False) -> None:
    """MPJPE vs CPU-minutes (log x): diffusion rows solid/dotted with seed-std error bars, TCN dashed.

    ``panels``: one panel per test 2D input (det left, gt right), sharing the y axis; colours follow the
    model (and host), so a model has the same colour in both panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from posediffusion.io_utils import atomic_path

    inputs: list[str | None] = [None]
    if panels and series:
        inputs = sorted({e["test_2d"] for e in series.values()}, key=lambda t: (t != "det", t))
    fig, axes = plt.subplots(1, len(inputs), figsize=(10 if len(inputs) == 1 else 15, 6.5), sharey=True,
                             squeeze=False)
    axes = {test_2d: ax for test_2d, ax in zip(inputs, axes[0], strict=True)}
    # tab20 without the greens, greys and olives the TCN uses: 14 colours, the 7 dark shades first (a dark
    # shade and its light partner look alike side by side), then repeated
    tab20 = plt.get_cmap("tab20").colors
    shades = [i for i in range(20) if i not in (4, 5, 14, 15, 16, 17)]
    diffusion_colors = iter([tab20[i] for i in shades[::2] + shades[1::2]] * 4)
    tcn_colors = iter(["black", "tab:green", "tab:gray", "tab:olive", "darkslategray", "lime"] * 4)
    colors: dict[tuple, str] = {}
    for entry in series.values():
        diffusion = entry["kind"] == "diffusion"
        key = ((entry["kind"], entry["variant"], entry["recipe_label"], entry["host"]) if panels else
               (entry["kind"], entry["variant"], entry["train_2d"], entry["test_2d"], entry["recipe_label"]))
        ax = axes[entry["test_2d"] if panels else None]
        if key not in colors:
            colors[key] = next(diffusion_colors if diffusion else tcn_colors)
        color = colors[key]
        pts = sorted(entry["points"], key=lambda p: p["cpu_minutes_actual"]["mean"])
        x = np.array([p["cpu_minutes_actual"]["mean"] for p in pts])
        y = np.array([p["mean"] for p in pts])
        err = [p["std"] or 0.0 for p in pts] if diffusion else None
        linestyle = "--" if not diffusion else "-" if entry["series_type"].startswith("curve") else ":"
        marker = "^" if not diffusion else "o" if entry["series_type"].startswith("curve") else "s"
        ax.errorbar(x, y, yerr=err, linestyle=linestyle, marker=marker, markersize=7, color=color, capsize=3,
                    label=entry["label"])
        snapshot = np.array([p["point_kind"] == "snapshot" for p in pts])
        if snapshot.any():
            ax.plot(x[snapshot], y[snapshot], linestyle="none", marker=marker, color=color,
                    markerfacecolor="white", markersize=7, zorder=4)
    if not series:
        axes[inputs[0]].text(0.5, 0.5, "no points", transform=axes[inputs[0]].transAxes, ha="center")
    for test_2d, ax in axes.items():
        ax.set_xscale("log")
        ticks = sorted({p["cpu_minutes"] for s in series.values() for p in s["points"]
                        if test_2d is None or s["test_2d"] == test_2d})
        if ticks:
            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training CPU-minutes (one thread; log scale)")
        ax.grid(True, which="both", alpha=0.3)
        if test_2d is not None:
            ax.set_title(f"tested on {test_2d} 2D", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1 if panels else 2,
                  frameon=False)
    first = axes[inputs[0]]
    first.set_ylabel("MPJPE (mm), P-Agg, pooled over the test frames")
    title = ("Learning curves. Open markers: snapshots of longer runs (cosine lr to the run's end), "
             "not short runs;\nsolid: snapshot curves, dotted: run ends, dashed: TCN reference; "
             "error bars: std over seeds")
    if panels:
        fig.suptitle(title, fontsize=9)
    else:
        first.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    warnings: list[str] = []
    wanted = None if args.variants == "all" else {v for v in args.variants.split(",") if v}
    raw: list[dict[str, Any]] = []
    files = result_files(args.results + args.runs_results)
    skipped: set[str] = set()
    for path in files:
        result = read(path, warnings)
        if not result:
            continue
        if wanted is not None and result.get("variant") not in wanted:
            skipped.add(str(result.get("variant")))
            continue
        raw += diffusion_points(path, result, warnings)
    if skipped:
        print(f"variants not selected (--variants): {', '.join(sorted(skipped))}")
    tcn_dirs = [d for d in (args.tcn_dir or [str(common.RESULTS_DIR / "tcn")]) if d]
    for tcn_dir in tcn_dirs:
        raw += tcn_points(Path(tcn_dir), warnings)
    hosts = parse_hosts(args.host)
    for point in raw:
        point["host"] = host_of(point["source"], hosts)
    points = aggregate(raw, warnings)
    series = series_table(points)
    for entry in series.values():
        for point in entry["points"]:
            point["series_label"] = entry["label"]
    points = [point for entry in series.values() for point in entry["points"]]  # table order
    text = markdown(series, warnings)
    from posediffusion.io_utils import write_text_atomic

    common.write_json(out_dir / "learning_curves.json", {
        "metric": "MPJPE (mm), P-Agg, pooled over frames", "diffusion_field": DIFFUSION_FIELD,
        "tcn_field": TCN_FIELD, "result_files": [str(p) for p in files],
        "tcn_dir": tcn_dirs[0] if len(tcn_dirs) == 1 else (tcn_dirs or ""),
        "points": points, "warnings": warnings, "command": sys.argv})
    write_text_atomic(out_dir / "learning_curves.md", text)
    plot(series, out_dir / "learning_curves.png", panels=args.panels)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
