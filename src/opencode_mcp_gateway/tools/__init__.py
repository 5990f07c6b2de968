"""The northbound side: the MCP tools the gateway serves (`build_server`).

Schemas, descriptions and annotations (`running`: the tools that start a task; `following`:
those on a task; `server`: the server, its middlewares and the gateway's own tools;
`arguments`), thin handlers, the per-call wrapper (`observe`: metrics, the log/audit line,
the span), elicitation, MCP Tasks for run_coding_task in both protocol eras (`mcp_tasks/`),
and the shapes only the MCP surface has (`views`). Task results are the task layer's views.

Arrows: tools may import `fleet`, `tasks`, `workspaces` (its error), `opencode` (its
errors), `auth` (the caller's identity), `observability` and `config`; never `edge` or the
entry points.
"""

from .server import build_server

__all__ = ["build_server"]
