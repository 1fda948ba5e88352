"""Alerting: the GPU-cluster rule pack, the rule evaluator, the notification pipeline, remediation.

Owns: Prometheus-format rule files, evaluation through the PromQL interface, Alertmanager-style
routing/grouping/inhibition/silencing, durable webhook delivery and the remediation receiver.
Must not touch: the store's internals (queries go through PromQL) or Slurm directly (actions go
through ``scheduler``).
"""
