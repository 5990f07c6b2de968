"""Reading the gateway's /metrics the way Prometheus does."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
from prometheus_client.parser import text_string_to_metric_families


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    def get_value(self, name: str, **labels: str) -> float:
        return self.get((name, frozenset(labels.items())), 0.0)


def scrape(base_url: str, **headers: str) -> Samples:
    response = httpx2.get(base_url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = Samples()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def wait_for(base_url: str, check: Callable[[Samples], bool], timeout: float = 20) -> Samples:
    """Scrape until `check` holds (background work settles a moment after a call returns)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(base_url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)
