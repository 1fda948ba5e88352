"""Errors of the scheduler adapter, shared by parsers, backends and the action API."""
from __future__ import annotations


class SchedulerError(RuntimeError):
    """The scheduler could not be asked or did not answer usefully."""


class SchedulerTimeout(SchedulerError):
    """The scheduler did not answer within the poll or action timeout."""


class ActionRefused(ValueError):
    """An action failed validation; nothing was sent to the scheduler."""
