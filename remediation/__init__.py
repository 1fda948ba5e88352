"""Remediation: the engine that acts on alerts, through the scheduler's validated actions only.

Owns: the policy (``default-policy.yml``: alert classes, their ladders, guards and modes), the
cases and the ladders walked one evaluation at a time (evidence, drain, requeue, reboot, verify,
resume...), the guards (drain budget, rate, cooldown), approvals, the audit trail and its SQLite
store, the automation API and the ``remediation`` hook it registers on the notification pipeline.
Must not touch: the store's internals (``tsdb``; its queries go through ``tsdb.client``, the
PromQL interface), the exporter (``exporter``), or Slurm except through ``scheduler``'s validated
actions. From ``alerts`` it takes the alert model, silences and the state database only.
"""
