"""Observability: Prometheus metrics (`metrics`), text or JSON logs with request and task
ids (`logs`), and optional OpenTelemetry traces (`tracing`). Use the modules by name
(`from ..observability import metrics`).

Arrows: observability imports nothing of the gateway; every other package may import it.
"""

from . import logs, metrics, tracing

__all__ = ["logs", "metrics", "tracing"]
