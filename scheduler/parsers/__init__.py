"""Parsers from Slurm's JSON (squeue, sinfo, scontrol, slurmrestd) to the scheduler model.

One parser per kind of document, none of them keyed on the data_parser version: each field is
read by what it looks like (see ``scheduler.fields``), so a new Slurm release that only adds or
re-types fields needs no change here.
"""
from scheduler.parsers.document import SlurmResponseError, load_document, source_info
from scheduler.parsers.jobs import parse_jobs
from scheduler.parsers.nodes import parse_nodes

__all__ = ["SlurmResponseError", "load_document", "parse_jobs", "parse_nodes", "source_info"]
