"""Backends: where snapshots come from and where actions go.

Every backend implements ``Backend`` (``fetch`` a ``SchedulerSnapshot``, ``execute`` an
``Action``), so the poller, the metrics and the action API never know which one they hold. Slurm
is reached through command vectors (``slurm_commands``: local executables or the simulator's HTTP
command face) or slurmrestd (``slurmrestd``). A Kubernetes backend would map drain/resume to
cordon+evict/uncordon and fill the same model.
"""
from scheduler.backends.base import Backend, SchedulerError, SchedulerTimeout

__all__ = ["Backend", "SchedulerError", "SchedulerTimeout"]
