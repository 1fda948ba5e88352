"""The scheduler adapter: ClusterWatch's one door to the workload manager (Slurm).

Owns: polling jobs and nodes (squeue/sinfo JSON, slurmrestd, the simulator's face), the job and
node model, their metrics, and the validated actions (drain, resume, requeue, reboot).
Must not touch: alert rules or remediation policy; it executes actions, it does not decide them.
"""
