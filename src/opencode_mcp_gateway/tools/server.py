"""The MCP server: its instructions, the middlewares of every call, and the tools.

The tools that start a task are in `running`, those that follow one in `following`; the two
about the gateway itself (its agents and its health) are here."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from .. import __version__
from ..config import Settings, auth_methods
from ..fleet import TaskPool
from .arguments import READ_ONLY
from .as_given import keep_text_as_given
from .callers import for_caller, is_admin
from .following import add_following_tools
from .handling import request_state_security, tool_errors
from .mcp_tasks import TasksExtension
from .observe import ToolCalls
from .running import add_run_tools
from .tool_list import ToolListCache
from .views import Agent, AgentsView, HealthView

INSTRUCTIONS = """\
Hands coding work to OpenCode, an autonomous coding agent working in a repository.
run_coding_task submits a task and waits for it (sending progress); if it runs past
timeout_seconds you get status 'running' and a task_id: poll get_task_status.
run_coding_task_async returns a task_id at once. Task ids stay valid as long as
OpenCode keeps the session. Pass task_id to run_coding_task to continue a session.
Status 'waiting_for_input' means OpenCode asks a permission or a question: answer
with respond_to_task."""


def build_server(service: TaskPool, settings: Settings, *, request_state_key: str | None = None) -> MCPServer:
    tasks = TasksExtension(service, auth_configured=bool(auth_methods(settings)))  # MCP Tasks, both eras
    mcp = MCPServer(
        "opencode-mcp-gateway",
        version=__version__,
        instructions=INSTRUCTIONS,
        request_state_security=request_state_security(request_state_key),
        extensions=[tasks],
    )
    as_caller = for_caller(auth_configured=bool(auth_methods(settings)))  # tasks belong to their caller
    mcp.middleware.append(ToolCalls(lambda name: mcp._tool_manager.get_tool(name) is not None, service))
    mcp.middleware.append(ToolListCache())  # the tools never change: list them once per protocol version
    add_run_tools(mcp, service, settings)
    add_following_tools(mcp, service, settings)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def list_agents(ctx: Context) -> AgentsView:
        """The agents OpenCode offers (name, description, mode). Pass a primary agent's
        name as `agent` to run_coding_task."""
        if service.sandboxes is not None:  # asked of the caller's own sandbox (started if need be)
            agents = await as_caller(lambda ctx: service.agents())(ctx=ctx)
        else:
            agents = await service.agents()
        return AgentsView(
            agents=[Agent(name=a.name, description=a.description or None, mode=a.mode) for a in agents],
            default_agent=settings.default_agent,
        )

    @mcp.tool(annotations=READ_ONLY)
    async def health_check(ctx: Context) -> HealthView:
        """Health of the gateway and of OpenCode behind it, with OpenCode's version, per worker."""
        opencode, workers = await service.health()
        view = HealthView(
            version=__version__,
            opencode=opencode,
            event_stream_connected=any(w.event_stream_connected for w in workers),
            permission_policy=settings.permission_policy,
            workers=workers,
        )
        if service.sandboxes is not None:  # which sandboxes exist is the admin's to see
            admin = is_admin(ctx, auth_configured=bool(auth_methods(settings)))
            view.workers = workers if admin else []
            view.sandboxes = await service.sandboxes.health() if admin else None
        return view

    keep_text_as_given(mcp)  # after every tool is registered
    tasks.attach(mcp)
    return mcp
