"""Prometheus metrics: what the gateway does, served as text at GET /metrics.

Names and labels are a contract (dashboards and tests outside this repository read them).
Label values stay bounded: tool names, outcomes, task statuses, worker names, the
configured models and token kinds; never a task id, a prompt or anything secret.

The metrics live in a registry of their own (not the client library's global one), so
the process and platform collectors of the library do not mix in and every name here is
the gateway's.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

disable_created_metrics()  # type: ignore[no-untyped-call] # no `_created` series: they double the output and no dashboard reads them
REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Tool calls last from milliseconds (reads) to an hour (a blocking coding task).
_CALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_OPENCODE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

TOOL_CALLS = Counter(
    "ocgw_tool_calls", "MCP tool calls by tool and outcome (ok, error)", ["tool", "outcome"], registry=REGISTRY
)
TOOL_CALL_DURATION = Histogram(
    "ocgw_tool_call_duration_seconds", "Duration of MCP tool calls", ["tool"], buckets=_CALL_BUCKETS, registry=REGISTRY
)
TASKS_STARTED = Counter("ocgw_tasks_started", "Coding tasks this gateway submitted to OpenCode", registry=REGISTRY)
TASKS_FINISHED = Counter(
    "ocgw_tasks_finished",
    "Tasks this gateway started that ended, by status (completed, failed, aborted)",
    ["status"],
    registry=REGISTRY,
)
for _status in ("completed", "failed", "aborted"):
    TASKS_FINISHED.labels(_status)  # every status shows, at 0, from the start
TASKS_RUNNING = Gauge("ocgw_tasks_running", "Tasks this gateway knows to be running", registry=REGISTRY)
WORKER_TASKS_RUNNING = Gauge(
    "ocgw_worker_tasks_running",
    "Tasks running on each OpenCode worker, as placement sees them (from the worker's event stream)",
    ["worker"],
    registry=REGISTRY,
)
MCP_SESSIONS = Gauge("ocgw_mcp_sessions", "Open MCP sessions (protocol eras with sessions)", registry=REGISTRY)
OPENCODE_UP = Gauge(
    "ocgw_opencode_up", "1 when the OpenCode worker answers its health check", ["worker"], registry=REGISTRY
)
OPENCODE_REQUEST_DURATION = Histogram(
    "ocgw_opencode_request_duration_seconds",
    "Duration of HTTP calls to OpenCode, by worker and outcome (ok, error, unavailable)",
    ["worker", "outcome"],
    buckets=_OPENCODE_BUCKETS,
    registry=REGISTRY,
)
OPENCODE_RESTARTS = Counter(
    "ocgw_opencode_restarts", "Times the supervisor restarted `opencode serve` (spawn mode)", registry=REGISTRY
)
EVENT_STREAM_RECONNECTS = Counter(
    "ocgw_event_stream_reconnects", "Reconnections of OpenCode's event stream", ["worker"], registry=REGISTRY
)
LLM_TOKENS = Counter(
    "ocgw_llm_tokens",
    "Tokens the model used for this gateway's tasks, by model and kind",
    ["model", "kind"],
    registry=REGISTRY,
)
LLM_COST = Counter("ocgw_llm_cost_usd", "Cost in USD of this gateway's tasks, by model", ["model"], registry=REGISTRY)

WEBHOOK_DELIVERIES = Counter(
    "ocgw_webhook_deliveries",
    "Webhook deliveries (one per event and destination) by event and result: delivered, failed (given up "
    "after WEBHOOK_RETRY_SECONDS), dropped (too many pending)",
    ["event", "result"],
    registry=REGISTRY,
)
for _event in ("task.completed", "task.failed", "task.aborted", "task.waiting_for_input"):
    for _result in ("delivered", "failed", "dropped"):
        WEBHOOK_DELIVERIES.labels(_event, _result)
WEBHOOK_RETRY_BACKLOG = Gauge(
    "ocgw_webhook_retry_backlog", "Webhook deliveries waiting for their next attempt", registry=REGISTRY
)
PERMISSION_REQUESTS = Counter(
    "ocgw_permission_requests",
    "Permission and question requests of this gateway's tasks that it settled, by kind and outcome: allowed or "
    "denied by PERMISSION_POLICY, answered by the caller, expired (INPUT_TIMEOUT_SECONDS)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
for _kind in ("permission", "question"):
    for _outcome in ("allowed", "denied", "answered", "expired"):
        PERMISSION_REQUESTS.labels(_kind, _outcome)
SANDBOXES = Gauge("ocgw_sandboxes", "Sandboxes by state (starting, running, stopped)", ["state"], registry=REGISTRY)
SANDBOX_START_SECONDS = Histogram(
    "ocgw_sandbox_start_seconds",
    "Time from a sandbox's start to its OpenCode answering",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
    registry=REGISTRY,
)

TOKEN_KINDS = ("input", "output", "reasoning", "cache_read", "cache_write")


def watch_sessions(count: Callable[[], int]) -> None:
    """Read the number of open MCP sessions from `count` at each scrape."""
    MCP_SESSIONS.set_function(lambda: float(count()))


def render() -> bytes:
    return generate_latest(REGISTRY)
