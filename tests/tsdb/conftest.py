"""Fixtures of the tsdb tests."""
from __future__ import annotations

import pytest

from tests.pages import page_servers
from tests.tsdb.scrape_pages import PAGES


@pytest.fixture
def server():
    """A page server on 127.0.0.1 answering ``PAGES`` (tests/tsdb/scrape_pages.py) by path; its address."""
    PAGES.clear()
    with page_servers(PAGES.get) as (address,):
        yield address
