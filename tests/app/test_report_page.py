"""The incident page's HTML (app.report.page), without a browser: what a hostile input cannot do to it, what
a file and a worker's page each allow, and the vote panel's two states. The browser tests
(tests/test_report_browser.py, tests/test_ui_browser.py) check what a person sees."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from markupsafe import escape

from app.analyze import Analysis
from app.hypotheses import Evidence, RootCause
from app.report.page import FILE_POLICY, WORKER_POLICY, WorkerView, render_analysis
from topology.surroundings import TopologyLink

T0 = datetime(2026, 11, 30, 14, tzinfo=UTC)
HOSTILE = "Pod/shop/</script><script>alert(1)</script>"


def _analysis(message: str = "m") -> Analysis:
    cause = RootCause(rank=1, pattern="p", scope="object:" + HOSTILE, confidence=0.9, score=0.9, message=message,
                      remediation="<b>do</b>", at=T0, ongoing=True, chain=["<img src=x onerror=alert(2)>"],
                      affected=[HOSTILE], root=HOSTILE, evidence=[
                          Evidence(at=T0, source="f.json#items[0]", text="<i>x</i>", resource=HOSTILE)])
    return Analysis(inputs=["f.json"], events=1, errors=[], hypotheses=[cause], verdict=f"most likely: {message}",
                    topology=[TopologyLink(type="RUNS_ON", source=HOSTILE, target="Node/<n>")])


def test_what_the_input_says_is_text_never_markup_or_script() -> None:
    page = render_analysis(_analysis("<script>alert(3)</script>"))
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>do</b>" not in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    # the graph's data island: every "<" escaped, so nothing in it can close its script element
    island = re.search(r'<script type="application/json" id="tapio-elements">(.*?)</script>', page, re.S)
    assert island is not None and "<" not in island.group(1) and "\\u003c/script\\u003e" in island.group(1)


def test_a_file_makes_no_request_and_a_worker_page_may_only_send_its_votes_home() -> None:
    page = render_analysis(_analysis())
    assert f'content="{escape(FILE_POLICY)}"' in page and "connect-src" not in FILE_POLICY
    assert "default-src 'none'" in FILE_POLICY
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    view = WorkerView(prediction_ids={1: "pr-1"}, feedback={}, writes_on=True)
    worker = render_analysis(_analysis(), worker=view)
    assert f'content="{escape(WORKER_POLICY)}"' in worker and "connect-src 'self'" in WORKER_POLICY


def test_the_vote_panel_says_how_to_turn_votes_on_where_the_worker_has_no_token() -> None:
    off = render_analysis(_analysis(), worker=WorkerView(prediction_ids={1: "pr-1"}, feedback={}, writes_on=False))
    assert "Votes are off on this worker" in off and "api.token" in off and "TAPIO_API_TOKEN" in off
    assert off.count('data-accurate="true" disabled') == 1 and 'id="tapio-token"' not in off
    on = render_analysis(_analysis(), worker=WorkerView(prediction_ids={1: "pr-1"}, feedback={}, writes_on=True))
    assert 'id="tapio-token"' in on and 'data-prediction="pr-1"' in on and " disabled" not in on.split(
        'class="vote"')[1].split("</div>")[0]
    assert "Votes are off" not in on


def test_the_predictions_list_tells_a_provisional_prediction_from_an_ongoing_and_a_resolved_one() -> None:
    from datetime import timedelta

    from app.report.page import render_predictions
    from topology.predictions import StoredPrediction

    def stored(pid: str, **changes: object) -> StoredPrediction:
        return StoredPrediction(id=pid, match_id="m-" + pid, pattern="oom-kill-loop", at=T0,
                                due=T0 + timedelta(minutes=10), message=f"message {pid}", **changes)
    page = render_predictions([stored("a", provisional=True), stored("b"), stored("c", resolved_at=T0)],
                              query={"namespace": "", "pattern": "", "since": "", "until": "", "limit": 50}, show="all")
    pills = re.findall(r'<span class="pill (\w+)"[^>]*>([^<]*)</span>', page)
    assert [text.split()[0] for _, text in pills] == ["provisional", "ongoing", "resolved"]
