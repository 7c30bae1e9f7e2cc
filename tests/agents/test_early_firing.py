"""Matches ahead of the watermark (`match.early_firing`, agents/windows.py `early`): a provisional
match as soon as the hits in make a pattern hold, then the final evaluation confirms or withdraws it.

Pure, as tests/agents/test_matching.py: the same `PartitionWindows` the windows agent runs. What
must hold: the graph a run leaves (provisional matches written, final ones written over them by id,
withdrawn ones dropped) is the graph of final matches only, whatever the arrival order and the pace
of the watermark; in order, the provisional match is the final one, sent a lateness earlier.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agents.hits import Selector, compile_pattern
from agents.partition_windows import PartitionWindows
from agents.pattern_files import load_pattern
from agents.predict import predict_batch
from agents.windows import WindowState, decode_state, encode_state
from core.events import epoch_ms
from core.records import MatchedBatch, PatternMatch
from tests.agents.test_matching import OOM, RATE_AND_METRIC, T0, ev, pattern_file, run
from topology.insight_rows import insight_rows

LATENESS = 10_000
END = 2**62


def run_ahead(events: list, patterns: list, *, every: int = 1, store: dict[str, bytes] | None = None,
              ahead: bool = True) -> list[tuple[int, PatternMatch]]:
    """Events in the order given, a hits batch each; every `every` events the watermark moves to the
    newest time less the lateness, the final evaluation runs, then the look ahead (as `_take` does).
    Returns (the newest event time when sent, match) in the order the windows agent sends them.
    `store`: the states are written there and loaded back at each batch (a restart every batch).
    `ahead` False: final matches only (`match.early_firing: false`)."""
    compiled = {p.name: p for p in patterns}
    selector = Selector(patterns)
    states = store if store is not None else {}

    def windows() -> PartitionWindows:
        return PartitionWindows(lambda key: decode_state(states[key]) if key in states else None, list(states),
                                ahead=ahead)
    part = windows()
    sent: list[tuple[int, PatternMatch]] = []
    newest = 0
    for i, event in enumerate(events):
        newest = max(newest, epoch_ms(event.timestamp))
        watermark = newest - LATENESS if i % every == 0 else 0
        part.add(list(selector.hits(event, {})), watermark=watermark)
        found = part.advance(compiled, watermark) + part.early(compiled)
        sent += [(newest, m) for m in found]
        for key, state in part.flush().items():
            if state is None:
                states.pop(key, None)
            else:
                states[key] = encode_state(state)
        if store is not None:
            part = windows()
    sent += [(newest, m) for m in part.advance(compiled, END)]
    return sent


def graph_after(sent: list[tuple[int, PatternMatch]]) -> dict[str, PatternMatch]:
    """What the graph holds after the sink wrote them in order (topology.insight_queries: the
    newest version of an id wins, a withdrawal drops a provisional match only)."""
    graph: dict[str, PatternMatch] = {}
    for _, m in sent:
        if m.withdrawn:
            if m.id in graph and graph[m.id].provisional:
                del graph[m.id]
        else:
            graph[m.id] = m
    return graph


def final_view(matches) -> dict[str, tuple]:  # noqa: ANN001
    return {m.id: (m.matched_at, m.count, tuple(m.event_ids)) for m in matches}


def test_in_order_the_provisional_match_is_the_final_one_a_lateness_sooner(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    events = [ev(s, "oom-kill", name=f"p{i}", node="n1") for i, s in enumerate((0, 10, 20, 25, 30))]
    sent = run_ahead(events, [oom])
    [(sent_at, early), (_, final)] = sent
    assert early.provisional and not final.provisional and not final.withdrawn
    assert early.id == final.id and early.matched_at == final.matched_at == T0.replace(second=20)
    assert sent_at == epoch_ms(early.matched_at)  # at the hit that made it hold, not 10 s of event time later
    assert early.count == 3 and early.event_ids == final.event_ids[:3]
    [only] = run(events, [oom])
    assert graph_after(sent) == {only.id: final} and final_view([final]) == final_view([only])


def test_a_late_hit_that_makes_the_pattern_hold_sooner_withdraws_the_provisional_match(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    events = [ev(10, "oom-kill", name="a", node="n1"), ev(12, "oom-kill", name="b", node="n1"),
              ev(14, "oom-kill", name="c", node="n1"),  # holds at 14 on what is in
              ev(11, "oom-kill", name="d", node="n1")]  # late, within the lateness: it holds at 12
    sent = run_ahead(events, [oom])
    assert [(m.provisional, m.withdrawn, int((m.matched_at - T0).total_seconds())) for _, m in sent] == [
        (True, False, 14), (False, False, 12), (False, True, 14)]
    assert sent[2][1].id == sent[0][1].id != sent[1][1].id
    assert final_view(graph_after(sent).values()) == final_view(run(events, [oom]))


def test_a_late_sample_that_breaks_a_metric_condition_withdraws_it_and_its_predictions(tmp_path: Path) -> None:
    hot = compile_pattern(load_pattern(pattern_file(tmp_path, RATE_AND_METRIC)))
    sample = lambda s, v: ev(s, "observed", kind="Node", name="n1", ns="", metrics={"memory.usage_percent": v})  # noqa: E731
    events = [sample(0, 90), sample(60, 90), sample(180, 90), sample(175, 70)]  # the low one arrives late
    sent = run_ahead(events, [hot])
    assert [(m.provisional, m.withdrawn) for _, m in sent] == [(True, False), (False, True)]
    assert graph_after(sent) == {} and run(events, [hot]) == []
    batch, _ = predict_batch(MatchedBatch(matches=[m for _, m in sent]), {"hot": hot.pattern})
    assert [p.provisional for p in batch.predictions] == [True]  # the withdrawal makes none
    assert sent[0][1].evidence and batch.matches[0].evidence == []  # predicted from it; the final brings it
    write = insight_rows(batch.matches, batch.predictions)  # one sink batch holding both: a withdrawal
    assert write.groups == [] and [w.match_id for w in write.withdrawn] == [sent[0][1].id]


def test_an_open_episode_is_not_sent_ahead(tmp_path: Path) -> None:
    """An incident going on already has its predictions in the graph: its updates (the same id)
    come with the final evaluation only; after a silence longer than the span, a new episode is
    sent ahead again."""
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    ongoing = [ev(s, "oom-kill", name=f"p{i}", node="n1") for i, s in enumerate(range(0, 700, 30))]
    again = [ev(1400 + s, "oom-kill", name=f"q{i}", node="n1") for i, s in enumerate((0, 10, 20))]
    sent = run_ahead(ongoing + again, [oom])
    early = [m for _, m in sent if m.provisional]
    assert [int((m.matched_at - T0).total_seconds()) for m in early] == [60, 1420]
    assert not any(m.withdrawn for _, m in sent)
    assert final_view(graph_after(sent).values()) == final_view(run(ongoing + again, [oom]))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("every", [1, 4])
def test_whatever_the_arrival_order_the_graph_ends_as_with_final_matches_only(tmp_path: Path, seed: int,
                                                                              every: int) -> None:
    """Disorder within the allowed lateness (each event up to 9 s out of place), a restart after
    every batch (states written and read back), the watermark moving every `every` events: the
    graph's matches are exactly those of the same run with final matches only, and every
    provisional one was confirmed or withdrawn by the end."""
    rng = random.Random(seed)
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    hot = compile_pattern(load_pattern(pattern_file(tmp_path, RATE_AND_METRIC, "hot.yaml")))
    events = [ev(s, "oom-kill", name=f"p{rng.randrange(6)}", node=f"n{rng.randrange(3)}", message=f"#{s}")
              for s in range(0, 900, rng.choice((3, 5, 7)))]
    events += [ev(s, "observed", kind="Node", name=f"n{s % 2}", ns="",
                  metrics={"memory.usage_percent": rng.choice((80.0, 90.0, 90.0, 95.0))}) for s in range(0, 900, 20)]
    events.sort(key=lambda e: epoch_ms(e.timestamp) + rng.randrange(9_000))
    sent = run_ahead(events, [oom, hot], every=every, store={})
    early = {m.id for _, m in sent if m.provisional}
    resolved = {m.id for _, m in sent if not m.provisional}
    assert early and early <= resolved
    final_only = run_ahead(events, [oom, hot], every=every, store={}, ahead=False)
    assert not any(m.provisional or m.withdrawn for _, m in final_only)
    assert graph_after(sent) == graph_after(final_only)


def test_a_provisional_match_outlives_a_restart_and_is_still_withdrawn(tmp_path: Path) -> None:
    hot = compile_pattern(load_pattern(pattern_file(tmp_path, RATE_AND_METRIC)))
    sample = lambda s, v: ev(s, "observed", kind="Node", name="n1", ns="", metrics={"memory.usage_percent": v})  # noqa: E731
    store: dict[str, bytes] = {}
    sent = run_ahead([sample(0, 90), sample(60, 90), sample(180, 90), sample(175, 70)], [hot], store=store)
    assert [(m.provisional, m.withdrawn) for _, m in sent] == [(True, False), (False, True)]
    state = WindowState(early="x", early_at=5, early_to=7)
    assert decode_state(encode_state(state)) == state


def test_a_deleted_pattern_withdraws_its_provisional_match_with_its_state(tmp_path: Path) -> None:
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    windows = PartitionWindows(lambda key: None, ahead=True)
    windows.add([h for i in range(3) for h in Selector([oom]).hits(ev(i, "oom-kill", name=f"p{i}", node="n1"), {})],
                watermark=0)
    [early] = windows.early({"oom": oom})
    assert early.provisional
    [gone] = windows.advance({}, epoch_ms(T0) + 60_000)  # the file deleted before event time passed it
    assert (gone.id, gone.withdrawn, gone.pattern, gone.scope) == (early.id, True, "oom", "node:n1")
    assert windows.flush() == {"oom|node:n1": None}


def test_a_final_match_that_quiets_the_provisional_ones_time_withdraws_it_in_the_same_batch(tmp_path: Path) -> None:
    """The final evaluation finds the pattern held sooner (a late hit) while event time is still short of
    the provisional match: the provisional one can no longer be confirmed (its time is in the final
    match's quiet period), so it is withdrawn with the final match, not a lateness later; until then
    the graph would have held two predictions of one incident (a real-cluster run showed them)."""
    oom = compile_pattern(load_pattern(pattern_file(tmp_path, OOM)))
    events = [ev(10, "oom-kill", name="a", node="n1"), ev(12, "oom-kill", name="b", node="n1"),
              ev(19, "oom-kill", name="c", node="n1"),  # holds at 19 on what is in: provisional
              ev(11, "oom-kill", name="d", node="n1"),  # late: it held at 12
              ev(23, "oom-kill", name="x", node="n2"),  # event time moves to 13: 12 is evaluated, 19 not yet
              ev(24, "oom-kill", name="y", node="n3")]
    sent = run_ahead(events, [oom])
    told = [(at - epoch_ms(T0), m.provisional, m.withdrawn, int((m.matched_at - T0).total_seconds()))
            for at, m in sent]
    assert told[:3] == [(19_000, True, False, 19), (23_000, False, False, 12), (23_000, False, True, 19)]
    assert final_view(graph_after(sent).values()) == final_view(run(events, [oom]))


@pytest.mark.parametrize("seed", range(40))
def test_whether_an_episode_is_still_open_reads_only_the_hits_after_the_last_evaluated_one(seed: int) -> None:
    # `_episode_open_at` reads each sorted list from the last evaluated hit on (bisect), not the whole
    # window: the same answer as a scan of every entry, for random hits, spans and times
    from types import SimpleNamespace

    from agents.windows import Entry, _episode_open_at, _insert

    rng = random.Random(seed)
    span = rng.choice([1_000, 5_000, 60_000])
    last = 1_000_000
    state = WindowState(episode="m1", last_hit=last)
    for name in ("a:first", "b:then", "c:count"):  # hits before and after the last evaluated one, gaps about a span
        entries: list[Entry] = []
        for i in range(rng.randrange(0, 25)):
            _insert(entries, Entry(t=last + rng.randrange(-5 * span, 12 * span), w=1, id=f"{name}{i}"))
        state.entries[name] = entries
    times = sorted({last + rng.randrange(0, 12 * span) for _ in range(rng.randrange(1, 8))})

    def scanned(t: int) -> bool:
        hits = sorted({e.t for es in state.entries.values() for e in es if state.last_hit < e.t < t})
        previous = state.last_hit
        for h in hits:
            if h - previous > span:
                return False
            previous = h
        return t - previous <= span

    assert _episode_open_at(SimpleNamespace(span_ms=span), state, times) == {t: scanned(t) for t in times}
