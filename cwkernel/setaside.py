"""Moving an unreadable file out of the way under a name that says when, so that the process can
start fresh beside it and nobody's evidence is lost: ``NAME.corrupt-<UTC time>[.N]``."""
from __future__ import annotations

import os
import time
from typing import Sequence


def set_aside(path: str, companions: Sequence[str] = ()) -> str:
    """Renames ``path`` (and ``path + suffix`` for each companion suffix that exists, keeping the
    pairing) to a fresh ``.corrupt-<UTC time>`` name; returns that name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside, n = f"{path}.corrupt-{stamp}", 1
    while os.path.exists(aside):
        n += 1
        aside = f"{path}.corrupt-{stamp}.{n}"
    for suffix in ("", *companions):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return aside
