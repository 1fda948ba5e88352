"""One SQLite file for the pipeline's durable state (outbox, notification log, silences, alerts,
acknowledgements, history), shared by those modules through one serialised connection.

One file and one connection: the outbox write and the notification-log write of a notification
land in the same database, and the state directory holds one thing to back up. The connection
is ``alerts.statedb.Database``: a corrupt file is set aside, an unwritable one or a full disk
keeps the state in memory until it can be written (see there).
"""
from __future__ import annotations

from alerts.statedb import Database, StateWriteError

__all__ = ["Database", "StateWriteError"]
