"""The cycle-collector policy of bulk work: nothing frozen outlives its unit, settings restored."""

from __future__ import annotations

import gc

from unimm.gcpolicy import bulk_parse, rare_collections


def test_bulk_parse_freezes_its_objects_until_the_unit_ends() -> None:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    with rare_collections():
        assert gc.get_threshold() != thresholds
        with bulk_parse():
            assert not gc.isenabled()
            parsed = [{"row": i} for i in range(10_000)]
        assert gc.isenabled() == enabled
        assert gc.get_freeze_count() >= len(parsed)  # out of the collector's walks while the unit runs
    assert gc.get_freeze_count() == 0  # handed back: a cycle made inside the unit is still collectable
    assert gc.get_threshold() == thresholds


def test_a_cycle_built_during_a_unit_is_collected_after_it() -> None:
    import weakref

    class Node:
        pass

    with rare_collections():
        with bulk_parse():
            a, b = Node(), Node()
            a.other, b.other = b, a
            ref = weakref.ref(a)
        del a, b
    gc.collect()
    assert ref() is None


def test_what_a_unit_leaves_alive_moves_to_the_oldest_generation() -> None:
    """The records and dialogues a unit hands on are not walked by the young collections after it."""
    with rare_collections():
        kept = [[i] for i in range(1_000)]
    young = {id(o) for generation in (0, 1) for o in gc.get_objects(generation=generation)}
    assert not any(id(x) in young for x in kept)
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(x) in oldest for x in kept)
