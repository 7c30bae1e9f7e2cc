"""Scraping a worker's Prometheus `/metrics` for the tests (not a test module): every sample, keyed by its
name and its sorted labels, parsed by the official client's parser."""

from __future__ import annotations

import http.client

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    assert response.status == 200, text[:2000]
    assert response.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"), response.getheader(
        "Content-Type")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
