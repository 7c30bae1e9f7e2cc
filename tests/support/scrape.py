"""Scraping a worker's Prometheus `/metrics` for the tests (not a test module): every sample, keyed by its
name and its sorted labels, parsed by the official client's parser; `get` for any other page."""

from __future__ import annotations

import http.client

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(port: int, path: str, *, timeout: float = 20, host: str = "127.0.0.1") -> tuple[int, str, bytes]:
    """GET `path` from `host`:`port`: the status, the Content-Type and the body."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, content_type, body = get(port, "/metrics")
    text = body.decode()
    assert status == 200, text[:2000]
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
