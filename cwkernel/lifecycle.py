"""How a long-running command waits: until SIGTERM or Ctrl-C, then its clean-ups run in order."""
from __future__ import annotations

import signal
import threading
from typing import Callable


def run_until_stopped(*cleanups: Callable[[], object]) -> None:
    """Block until SIGTERM or Ctrl-C, then call ``cleanups`` in order (each even if one fails)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        errors = []
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - run the remaining clean-ups, then re-raise
                errors.append(exc)
        if errors:
            raise errors[0]
