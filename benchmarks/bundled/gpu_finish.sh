#!/bin/bash
# Finishes the bundled model's retrain (docs/bundled-model.md) on a lent GPU (device tool), run from the
# repository root there; outputs under $OUT. The CPU run (2 gloo processes, batch 8 each) is carried in
# runs_gpu/bundled2 and continued with --resume by 2 processes sharing the one GPU (gloo: NCCL needs one GPU per
# process), so the global batch, data order and step count stay the CPU run's. fp32 (--amp none: what `auto`
# was on the CPU), dataset carried in .gpudata/ (the same files as the CPU run's /work/data_cmu, md5-checked).
# The run folder comes back as $OUT/run.tgz (every 250 steps a checkpoint; finish on CPU with --resume if cut:
# untar it, put back the CPU machine's data_dir and checkpoint in config.yaml, keep `amp: none`).
# Carry runs_gpu/bundled2 on the FIRST call only: a carried path replaces the one on the device, so a second
# call that carries it again restarts from the carried copy (2026-11-30: the first call took the run from step
# 1,250 to 9,350 in 555 s, ~15 steps/s; a second call carried the old copy and its 270 s were discarded).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PY=${PY:-python3} TOTAL=${TOTAL:-560}
RUN=$PWD/runs_gpu/bundled2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/log.txt"
# the run's recorded paths are the CPU machine's; the data files are identical
sed -i "s#/work/data_cmu#$PWD/.gpudata#; s#^checkpoint: .*#checkpoint: $RUN#; s#^amp: auto#amp: none#" "$RUN/config.yaml"
grep -E "^(checkpoint|amp)|data_dir" "$RUN/config.yaml" | tee -a "$OUT/log.txt"
OMP_NUM_THREADS=1 timeout "$TOTAL" $PY -m torch.distributed.run --standalone --nproc_per_node 2 \
    -m posediffusion.cli train -d cmu --data-dir "$PWD/.gpudata" -k det --preset small -c "$RUN" -b 8 \
    -e 100000 --model joint_mask=true --joint-dropout 0.2 --camera-augmentation --max-steps 18000 \
    --val-every-steps 1000 --save-every-steps 250 --nolog --device cuda --amp none --resume \
    > "$OUT/train_log.txt" 2>&1
echo "train exit $?" | tee -a "$OUT/log.txt"
tail -n 2 "$RUN/steps.csv" | tee -a "$OUT/log.txt"
tar czf "$OUT/run.tgz" -C runs_gpu bundled2
ls -la "$OUT"
