#!/bin/bash
# The second lent GPU session (device tool), run from the repository root there; outputs under $OUT.
# Recorded in benchmarks/RESULTS.md ("On a GPU, second loan"; the replicas' scores in the ablation tables).
# Called twice on 2026-11-30: as below, then with RUNS= seed 2 of prompts_first_block (6633 steps),
# improved_no_semantic_prompts (7860) and improved_no_energy_regulator (7415), TOTAL=250 REPLICA_MAX=235.
#   1. step-matched replicas of 25-CPU-minute ablation runs that had fewer than 3 seeds (issue 10): each
#      run stops at the mean step count of its variant's CPU seeds (regulator_no_smoothing: the full model's,
#      the same network and step cost); the ablation protocol otherwise (small, batch 8, det 2D, EMA, no
#      validation split, fp32 with TF32 off), trained and scored on CUDA (camera 54138969, first 240 frames,
#      P-Agg H=5 K=5 flip); one one-thread process per run, all sharing the GPU;
#   2. then, in the time left, benchmarks/gpu_check.py alone on the GPU: CUDA against CPU and paper-size
#      speed for the default design and the paper's design (config.PAPER_DESIGN), no torch.compile.
# Needs the prepared CMU dataset (det 2D, 3D, split) in .gpudata/ (carried; ignored by git).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PY=${PY:-python3} DEVICE=${DEVICE:-cuda}
TOTAL=${TOTAL:-570}           # seconds for the whole script
REPLICA_MAX=${REPLICA_MAX:-470}  # replicas still running then are stopped (checkpoints back: finish on CPU
                                 # with accuracy.py --resume)
# seed variant steps
RUNS=${RUNS:-"0 regulator_no_smoothing 5555
1 regulator_no_smoothing 5555
2 regulator_no_smoothing 5555
2 no_graph 5964
2 no_motion_prompts 5931
2 no_energy_regulator_matched 5760
2 graph_attention_bias 6198"}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p runs_gpu
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/log_check.txt"
while read -r seed variant steps; do
  [ -n "$seed" ] || continue
  $PY benchmarks/accuracy.py --data-dir .gpudata --jobs 1 --seeds "$seed" --budget-min 1000 \
    --batch-size 8 --snapshot-minutes= --eval-inputs det --variants "$variant" --max-steps "$steps" \
    --save-every-steps 500 --runs-dir runs_gpu/runs --out-dir runs_gpu/results --device "$DEVICE" --amp none \
    > "runs_gpu/${variant}_s$seed.log" 2>&1 &
done <<< "$RUNS"
while [ "$(jobs -rp | wc -l)" -gt 0 ] && [ "$(elapsed)" -lt "$REPLICA_MAX" ]; do
  sleep 10
  echo "$(elapsed) s: $(ls runs_gpu/results/seed*/accuracy_*.json 2>/dev/null | wc -l) scored; steps" \
       "$(tail -qn1 runs_gpu/runs/seed*/*/steps.csv 2>/dev/null | cut -d, -f1 | tr '\n' ' ')" \
       | tee -a "$OUT/log_progress.txt"
done
kill $(jobs -rp) 2>/dev/null; sleep 1
echo "replicas ended at $(elapsed) s" | tee -a "$OUT/log_progress.txt"
tail -n 3 runs_gpu/*.log > "$OUT/log_runs.txt" 2>&1
tar czf "$OUT/results.tgz" runs_gpu/results runs_gpu/*.log \
  runs_gpu/runs/seed*/*/{TRAINED,config.yaml,log.csv,steps.csv} 2>/dev/null
# every run's last checkpoint (with optimiser state, for --resume), in parts under the 16 MiB a file may have
tar cf - runs_gpu/runs/seed*/*/{config.yaml,log.csv,steps.csv,last} 2>/dev/null \
  | split -b 15m - "$OUT/ckpt.tar.part_"
left=$(( TOTAL - $(elapsed) - 10 ))
if [ "$left" -gt 30 ]; then
  timeout "$left" $PY benchmarks/gpu_check.py --out "$OUT/gpu_check2.json" --no-compile --train-steps 10 \
    --designs default,paper 2>&1 | tee -a "$OUT/log_check.txt"
fi
echo "done at $(elapsed) s"
ls -la "$OUT"
