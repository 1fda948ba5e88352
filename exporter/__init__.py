"""The per-node exporter: GPU (NVML), host (procfs/sysfs), InfiniBand, storage and job metrics.

Owns: the collectors under ``exporter/collectors``, the NVML backends (real ``pynvml`` and the
fake in ``exporter/nvml``), the collection loop and the ``/metrics`` HTTP endpoint of one node.
Must not touch: the store (``tsdb``), alerting or the scheduler (``scheduler``). It only reads its
node and serves text; it never calls the scheduler, and attributes GPUs to jobs from what the
node itself shows.
"""
