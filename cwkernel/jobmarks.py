"""What a job says about itself through a node's textfile directory, and who the node saw say it.

Families named ``clusterwatch_job_*`` are the one part of ClusterWatch's namespace a job may write
(the checkpoint contract, scheduler/checkpoint.py). The directory is shared by every job on the
node, so a job of one user can write a mark in the name of another user's job. The file's owner is
the one thing a job cannot forge: the exporter stamps every sample of those families with it
(``WRITER_LABEL``, replacing any the file gives), except where the owner is root (a Slurm prolog,
an administrator's script) or the exporter's own user, which may speak for any job: their samples
carry no writer. Readers believe a sample only where it has no writer or the writer is the job's
own user, by name or by uid (the writer is the uid until the node has resolved the name).
"""
from __future__ import annotations

JOBS_OWN_PREFIX = "clusterwatch_job_"
WRITER_LABEL = "writer"
