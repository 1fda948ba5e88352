"""Alerting: the GPU-cluster rule pack, the rule evaluator and the notification pipeline.

Owns: Prometheus-format rule files, evaluation through the PromQL interface, Alertmanager-style
routing/grouping/inhibition/silencing, durable webhook delivery, the inbound Alertmanager receiver
and the pipeline's receiver hooks (``remediation`` registers one).
Must not touch: the store's internals (``tsdb``; queries go through ``tsdb.client``, the PromQL
interface), the exporter (``exporter``) or the scheduler (``scheduler``): alerting decides and
acts on nothing in Slurm; remediation, above it, does.
"""
