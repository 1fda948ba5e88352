"""The dashboard's ``serve`` options, apart from the component so that reading them (the CLI's
parser, docs/configuration.md) does not import the pages."""
from __future__ import annotations

from cwkernel import settings
from cwkernel.settings import Option

MAX_BANNER_CHARS = 500
OPTIONS = (
    Option("banner", None, f"a notice shown above every page (at most {MAX_BANNER_CHARS} characters; the demo "
           "says there that the cluster is simulated)", settings.optional_path, "TEXT"),
)
