"""Repeated log lines are rate-limited per message template (issue 14, finding 6: a storm wrote
60 MB of log in 40 s), while other messages still get through."""
from __future__ import annotations

import io
import logging

from cwkernel.logthrottle import Throttle, install


def test_a_repeated_message_is_cut_to_its_burst_and_others_still_pass() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.logthrottle")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    throttle = Throttle(burst=3, period=3600)
    install(throttle, logger)
    try:
        for i in range(1000):
            logger.warning("accept failed on fd %d", i)  # one template, a thousand lines
        logger.warning("something else happened")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == ["accept failed on fd 0", "accept failed on fd 1", "accept failed on fd 2",
                     "something else happened"]
    assert throttle.dropped_total == 997


def test_the_log_receivers_notifications_are_never_cut() -> None:
    # Each line of the log receiver is a delivered notification: throttling it would lose
    # notifications during exactly the storm they report.
    stream = io.StringIO()
    logger = logging.getLogger("clusterwatch.notifications")
    previous = logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    throttle = Throttle(burst=3, period=3600)
    install(throttle, logger)
    try:
        for i in range(50):
            logger.info("notification %s to %s", i, "log")
    finally:
        logger.removeHandler(handler)
        logger.propagate, _ = previous
        logger.setLevel(previous[1])
    assert len(stream.getvalue().splitlines()) == 50
    assert throttle.dropped_total == 0
