#!/bin/bash
# Slurm Prolog (slurm.conf: Prolog=/etc/slurm/prolog.d/clusterwatch.sh, run by slurmd as root on
# each allocated node before the job starts). Writes one file per allocated GPU, named by the GPU
# index, holding the job id: the format dcgm-exporter's --hpc-job-mapping-dir and Princeton's
# jobstats use. The exporter attributes the GPU to the job from these files even while no process
# runs on it, which is how "held but unused" GPUs are found.
set -u
MAPPING_DIR=${CLUSTERWATCH_GPU_JOBS_DIR:-/run/clusterwatch/gpu-jobs}
# SLURM_JOB_GPUS lists the node-local GPU indices of the allocation, e.g. "0,1,5".
[ -n "${SLURM_JOB_GPUS:-}" ] || exit 0
case "$SLURM_JOB_ID" in (*[!0-9]*|"") exit 0 ;; esac
mkdir -p "$MAPPING_DIR"
for gpu in ${SLURM_JOB_GPUS//,/ }; do
  case "$gpu" in (*[!0-9]*|"") continue ;; esac
  printf '%s\n' "$SLURM_JOB_ID" > "$MAPPING_DIR/$gpu.tmp" && mv -f "$MAPPING_DIR/$gpu.tmp" "$MAPPING_DIR/$gpu"
done
exit 0
