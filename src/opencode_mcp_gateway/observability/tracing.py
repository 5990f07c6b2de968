"""OpenTelemetry tracing, optional: a span per tool call, a child span per OpenCode request.

Active only when OTEL_EXPORTER_OTLP_ENDPOINT is set and the `otel` extra is installed
(`pip install 'opencode-mcp-gateway[otel]'`): spans go out over OTLP/HTTP. Otherwise the
OpenTelemetry API (a dependency of the MCP SDK) hands out no-op spans and nothing is
exported. The standard OTEL_* variables (service name, headers, batch delays) apply.

A tool call continues the caller's trace: a `traceparent` in the request's `_meta` (the
MCP SDK opens its own server span from it, and ours nests inside), else a `traceparent`
HTTP header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, ProxyTracerProvider, Span, SpanKind, StatusCode

log = logging.getLogger(__name__)

_tracer = trace.get_tracer("opencode_mcp_gateway")
SERVICE_NAME = "opencode-mcp-gateway"


def setup(endpoint: str | None) -> Callable[[], None]:
    """Install the OTLP exporter when an endpoint is configured; returns a flush-and-stop."""
    if not endpoint:
        return lambda: None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry's SDK is not installed: "
            "pip install 'opencode-mcp-gateway[otel]' to export traces"
        )
        return lambda: None
    resource = Resource.create({"service.name": SERVICE_NAME}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_EXPORTER_OTLP_* itself
    trace.set_tracer_provider(provider)
    log.info("exporting traces over OTLP/HTTP to %s", endpoint)
    return provider.shutdown


def caller_context(meta: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> Context | None:
    """The parent for a tool call's span: None (the current span, which the MCP SDK opened
    from `_meta`) when `_meta` carries a traceparent, else the HTTP header's, if any."""
    if meta and "traceparent" in meta:
        return None
    if headers and "traceparent" in headers:
        ctx = propagate.extract({"traceparent": headers["traceparent"], "tracestate": headers.get("tracestate", "")})
        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    return None


def _exporting() -> bool:
    """Whether a tracer provider is installed. Without one, a span is still made, made
    current and propagated on every call (tens of microseconds each) for nobody to see."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


@contextmanager
def tool_span(tool: str, parent: Context | None, attributes: dict[str, str]) -> Iterator[Span]:
    if not _exporting():
        yield INVALID_SPAN  # takes attributes and a status, and keeps none
        return
    with _tracer.start_as_current_span(
        f"tool {tool}", context=parent, kind=SpanKind.INTERNAL, attributes={"gen_ai.tool.name": tool, **attributes}
    ) as span:
        yield span


@contextmanager
def opencode_span(method: str, path: str, worker: str, headers: dict[str, str]) -> Iterator[Span]:
    """A client span for one OpenCode call; `headers` get the traceparent to send along."""
    if not _exporting():
        yield INVALID_SPAN
        return
    with _tracer.start_as_current_span(
        f"opencode {method}",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.path": path, "ocgw.worker": worker},
    ) as span:
        propagate.inject(headers)
        yield span


def mark_error(span: Span, message: str) -> None:
    span.set_status(StatusCode.ERROR, message[:200])
