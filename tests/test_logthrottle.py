"""Repeated log lines are rate-limited per message template (issue 14, finding 6: a storm wrote
60 MB of log in 40 s), while other messages still get through."""
from __future__ import annotations

import io
import logging

from clusterwatch.logthrottle import Throttle, install


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
