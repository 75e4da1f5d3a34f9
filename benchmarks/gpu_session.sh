#!/bin/bash
# One lent GPU session (device tool), run from the repository root there; outputs under $OUT.
# Recorded in benchmarks/RESULTS.md ("On a GPU" and "The lower-noise validation").
#   1. benchmarks/gpu_check.py: CUDA against CPU, paper-size training/sampling speed (fp32, TF32, bf16,
#      bf16 + torch.compile), alone on the GPU.
#   2. step-matched GPU replicas of the 25-CPU-minute validation runs: full and improved, seeds 0..5, one
#      fixed validation split (--val-seed 0), each variant stopped at the mean step count of its three CPU
#      runs (full 5730, improved 7120), fp32, scored on every camera and frame of the held-out takes (the
#      test split as the CPU runs: camera 54138969, first 240 frames);
#      12 one-thread processes sharing the GPU, alongside the test suite (pytest -n 4).
# Needs the prepared CMU dataset (det 2D, 3D, split) in .gpudata/ (carried; ignored by git).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
SEEDS=${SEEDS:-"0 1 2 3 4 5"}
PY=${PY:-python3} DEVICE=${DEVICE:-cuda} STEPS=${STEPS:-full=5730,improved=7120}  # overridable for a dry run
DEADLINE=${DEADLINE:-300}  # seconds for the replicas after the checks start
mkdir -p runs_gpu
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/log_check.txt"
timeout 180 $PY benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | tee -a "$OUT/log_check.txt"
start=$(date +%s)
for seed in $SEEDS; do
  $PY benchmarks/accuracy.py --data-dir .gpudata --jobs 2 --seeds "$seed" --budget-min 1000 \
    --batch-size 8 --eval-inputs det --variants full,improved --runs-dir runs_gpu/runs \
    --out-dir runs_gpu/results --val-fraction 0.1 --val-seed 0 --max-steps $STEPS \
    --val-camera all --val-eval-frames 0 --device $DEVICE --amp none > "runs_gpu/seed$seed.log" 2>&1 &
done
timeout 240 $PY -m pytest -q -n 4 -p no:cacheprovider tests > "$OUT/log_pytest.txt" 2>&1
tail -3 "$OUT/log_pytest.txt"
while [ "$(jobs -rp | wc -l)" -gt 0 ] && [ $(( $(date +%s) - start )) -lt "$DEADLINE" ]; do
  sleep 5
  echo "$(( $(date +%s) - start )) s: $(ls runs_gpu/results/seed*/accuracy_*.json 2>/dev/null | wc -l) done; " \
       "$(tail -qn1 runs_gpu/runs/seed*/*/steps.csv 2>/dev/null | cut -d, -f1 | tr '\n' ' ')"
done
kill $(jobs -rp) 2>/dev/null; pkill -f "runs-dir=runs_gpu/runs" 2>/dev/null; sleep 1
$PY benchmarks/accuracy.py --report-only --seeds "$(echo $SEEDS | tr ' ' ',')" \
  --out-dir runs_gpu/results --runs-dir runs_gpu/runs > runs_gpu/report.log 2>&1
cat runs_gpu/seed*.log runs_gpu/report.log > "$OUT/log_runs.txt"
tar czf "$OUT/results.tgz" runs_gpu/results runs_gpu/runs/seed*/*/{TRAINED,config.yaml,log.csv,steps.csv} 2>/dev/null
for v in full improved; do
  tar cf "$OUT/ckpt_$v.tar" runs_gpu/runs/seed*/$v/last/{config.json,ema.safetensors,metadata.json} 2>/dev/null
done
ls -la "$OUT"
