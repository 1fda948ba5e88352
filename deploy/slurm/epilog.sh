#!/bin/bash
# Slurm Epilog (slurm.conf: Epilog=/etc/slurm/epilog.d/clusterwatch.sh): removes the mapping
# files the prolog wrote for this job, and only those (a file re-written by a later job on the
# same GPU is left alone).
set -u
MAPPING_DIR=${CLUSTERWATCH_GPU_JOBS_DIR:-/run/clusterwatch/gpu-jobs}
case "${SLURM_JOB_ID:-}" in (*[!0-9]*|"") exit 0 ;; esac
[ -d "$MAPPING_DIR" ] || exit 0
for file in "$MAPPING_DIR"/*; do
  [ -f "$file" ] || continue
  if [ "$(head -n 1 "$file" 2>/dev/null)" = "$SLURM_JOB_ID" ]; then
    rm -f "$file"
  fi
done
exit 0
