"""The server's long-lived heap is kept out of the cyclic collector's full passes, and handed
back once in a while so that cycles that died meanwhile are still freed."""
from __future__ import annotations

import gc
import weakref

import pytest

from cwkernel.gcpolicy import GCPolicy


class Node:
    def __init__(self) -> None:
        self.peer: "Node | None" = None


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()


def test_what_survived_is_frozen_and_a_full_pass_no_longer_walks_it():
    survivors = [[i] for i in range(1000)]  # containers: tracked by the collector
    gc.collect()
    assert {id(x) for x in survivors} <= {id(o) for o in gc.get_objects(generation=2)}
    GCPolicy().freeze()
    assert gc.get_freeze_count() >= len(survivors)
    walked = {id(o) for o in gc.get_objects(generation=2)}
    assert not any(id(x) in walked for x in survivors), "a full pass would still walk them"
    assert survivors[999] == [999]  # alive, only out of the collector's sight


def test_a_cycle_that_dies_while_frozen_is_freed_at_the_next_thaw():
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    alive = weakref.ref(a)
    policy = GCPolicy()
    policy.freeze()
    del a, b
    gc.collect()
    assert alive() is not None, "frozen: not collected by a full pass"
    policy.thaw()
    assert alive() is None, "freed once thawed"
    assert policy.thaws == 1 and gc.get_freeze_count() > 0  # and the survivors frozen again
