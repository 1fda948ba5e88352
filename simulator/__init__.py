"""A simulated GPU cluster in one process: nodes, GPUs, jobs, a Slurm-compatible face and faults.

Owns: the fleet model, the workload generator, fault scenarios and the HTTP server that serves
every simulated node's exposition through the real exporter code over the fake NVML backend.
Must not touch: the store (``tsdb``), alerting, remediation or the dashboard; it is only ever
observed from outside.
"""
