"""How the diagnose stage's state is stored (agents.diagnose_log): per-batch deltas in a table, read
back as the latest version of every item, deletions included, and the table kept small. Pure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.diagnose_log import Ended, Item, PartitionLog, decode_delta, encode_delta, parse_delta_key

KEYS = [f"x\x1fk{i}" for i in range(12)]


def _item(n: int) -> Ended:
    return Ended(namespace="ns", match_id=f"m{n}", at_ms=n)


def _apply(table: dict[str, bytes], plog: PartitionLog, changes: dict[str, Item | None]) -> None:
    writes, deletes = plog.record(changes, lambda key: decode_delta(table[key]) if key in table else None)
    for key, delta in writes:
        table[key] = encode_delta(delta)
    for key in deletes:
        table.pop(key, None)  # as a Faust table: deleting a key it lost is no error


def _loaded(table: dict[str, bytes]) -> tuple[PartitionLog, dict[str, Item]]:
    plog = PartitionLog(0)
    return plog, plog.load((parse_delta_key(k)[2], decode_delta(v)) for k, v in table.items())  # type: ignore[index]


batches = st.lists(st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), st.integers(0, 10**6)), max_size=6),
                   max_size=120)


@settings(max_examples=200, deadline=None)
@given(batches, st.integers(0, 120))
def test_the_table_reads_back_as_the_latest_version_of_every_item(changes: list[dict], restart_at: int) -> None:
    """Whatever was written and deleted, in any batches, and with a restart (the log read back from
    the table) anywhere: every item reads back as its last version, and a deleted one stays deleted."""
    table: dict[str, bytes] = {}
    plog = PartitionLog(0)
    model: dict[str, Item] = {}
    for i, batch in enumerate(changes):
        if i == restart_at:
            plog, found = _loaded(table)
            assert found == model
        items: dict[str, Item | None] = {k: None if v is None else _item(v) for k, v in batch.items()}
        _apply(table, plog, items)
        for key, item in items.items():
            if item is None:
                model.pop(key, None)
            else:
                model[key] = item
        assert _loaded(table)[1] == model


def test_a_long_run_keeps_the_table_about_the_size_of_what_lives() -> None:
    """Items written again and again, others deleted: the stored entries stay within about twice the
    live items (a delta half dead is copied forward), however long it runs; an item that never
    changes is not copied again and again."""
    table: dict[str, bytes] = {}
    plog = PartitionLog(0)
    _apply(table, plog, {"x\x1fquiet": _item(0)})
    for n in range(1, 5_000):
        changes: dict[str, Item | None] = {KEYS[n % 12]: _item(n), KEYS[(n * 7) % 12]: None}
        _apply(table, plog, changes)
        stored = [decode_delta(v) for v in table.values()]
        entries = sum(len(d.items) for d in stored)
        live = len(_loaded(table)[1])
        assert entries <= 2 * live + 8, (n, entries, live)
    assert len(table) <= 20
    quiet_copies = sum("x\x1fquiet" in decode_delta(v).items for v in table.values())
    assert quiet_copies == 1


def test_a_delta_the_table_lost_is_let_go() -> None:
    """A delta to copy forward that the table no longer holds: its items are gone, the rest stays."""
    table: dict[str, bytes] = {}
    plog = PartitionLog(0)
    _apply(table, plog, {"x\x1fa": _item(1), "x\x1fb": _item(2)})
    _apply(table, plog, {"x\x1fa": _item(3)})  # the first delta is half dead: copied forward next time
    del table[min(table)]
    _apply(table, plog, {"x\x1fc": _item(4)})
    assert _loaded(table)[1] == {"x\x1fa": _item(3), "x\x1fc": _item(4)}
    assert len(plog) == len(table) == 2
