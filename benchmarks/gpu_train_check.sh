#!/bin/bash
# Second lent-GPU check (device tool), from the repository root there; outputs under $OUT.
# The `train` and `evaluate` commands on CUDA at paper size: bf16 autocast (--amp auto), EMA, in-training
# validation, checkpoint, exact --resume, then evaluation of the checkpoint on CUDA and on CPU (the same
# weights, H=1, K=1; their noise streams differ, so the scores agree within sampling noise, not exactly). Needs the prepared CMU dataset in .gpudata/ (carried).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PY=${PY:-python3} DEVICE=${DEVICE:-cuda} PRESET=${PRESET:-paper}  # overridable for a dry run
run=/tmp/paper_run
common=(-d cmu --data-dir .gpudata -k det --preset $PRESET -c $run --device $DEVICE --val-every-steps 20
        --max-frames-per-sequence 500 --nolog)
( set -x
  time $PY -m posediffusion.cli train "${common[@]}" --max-steps 40 --overwrite
  time $PY -m posediffusion.cli train "${common[@]}" --max-steps 60 --resume
  tail -n 3 $run/steps.csv; cat $run/log.csv
  time $PY -m posediffusion.cli evaluate -c $run -d cmu --data-dir .gpudata -k det --device $DEVICE \
    --camera-ids 54138969 --max-frames-per-sequence 240 --hypotheses 1 --steps 1 --out $OUT/eval_cuda
  time $PY -m posediffusion.cli evaluate -c $run -d cmu --data-dir .gpudata -k det --device cpu \
    --camera-ids 54138969 --max-frames-per-sequence 240 --hypotheses 1 --steps 1 --out $OUT/eval_cpu
) > "$OUT/log_train_check.txt" 2>&1
cp $run/steps.csv $run/log.csv "$OUT/" 2>/dev/null
tail -c 5000 "$OUT/log_train_check.txt"
