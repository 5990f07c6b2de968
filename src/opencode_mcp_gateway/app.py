"""The ASGI application: probes, the guard, the MCP endpoint, and the background work."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
import httpx2
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from .config import Settings
from .http_guard import LOCAL_NAMES, GatewayGuard, HostRules
from .opencode import EventHub, OpenCodeClient
from .supervisor import OpenCodeSupervisor
from .tasks import Catalog, PermissionBroker, TaskService
from .tools import build_server, opencode_health

log = logging.getLogger(__name__)


def host_rules(settings: Settings) -> HostRules:
    if settings.allowed_host_list:
        return HostRules(settings.allowed_host_list)
    if settings.binds_loopback:
        return HostRules(list(LOCAL_NAMES))
    return HostRules(None)


def create_app(
    settings: Settings,
    supervisor: OpenCodeSupervisor | None = None,
    *,
    opencode_transport: httpx2.AsyncBaseTransport | None = None,  # tests: an in-memory OpenCode
) -> Starlette:
    if settings.spawn_opencode and supervisor is None:
        supervisor = OpenCodeSupervisor(settings)
    password = settings.opencode_password.get_secret_value() if settings.opencode_password else None
    if supervisor is not None:
        password = supervisor.password
    client = OpenCodeClient(
        settings.opencode_base_url,
        username=settings.opencode_username,
        password=password,
        timeout=settings.opencode_timeout_seconds,
        is_ready=(lambda: supervisor.ready) if supervisor is not None else None,
        transport=opencode_transport,
    )
    hub = EventHub(client, gate=supervisor.wait_ready if supervisor else None)
    broker = PermissionBroker(client, hub, settings.permission_policy, settings.input_timeout_seconds)
    service = TaskService(settings, client, hub, broker, Catalog(client))
    mcp = build_server(service)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path=settings.mcp_path,
        # The guard in front does Host/Origin with the gateway's own rules.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=settings.host,
    )

    async def healthz(_: Request) -> JSONResponse:
        health = await opencode_health(client, timeout=2.0)
        return JSONResponse(
            {
                "gateway": "ok",
                "opencode": {"healthy": health.healthy, "version": health.version},
                "event_stream_connected": hub.connected,
            }
        )

    async def readyz(_: Request) -> PlainTextResponse:
        health = await opencode_health(client, timeout=2.0)
        if health.healthy:
            return PlainTextResponse("ready")
        return PlainTextResponse(f"not ready: {health.error or 'OpenCode reports unhealthy'}", status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            if supervisor is not None:
                tg.start_soon(supervisor.run)
            tg.start_soon(hub.run)
            tg.start_soon(broker.run)
            tg.start_soon(service.watch_session_errors)
            try:
                async with mcp.session_manager.run():
                    yield
                    # Shutting down: open blocking calls end now, but their OpenCode runs must
                    # not be aborted: they continue (or resume) and stay readable by task_id.
                    service.shutting_down = True
            finally:
                tg.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            if supervisor is not None:
                await supervisor.stop()
            await client.aclose()

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Mount("/", app=mcp_app)],
        lifespan=lifespan,
    )
    token = settings.mcp_bearer_token.get_secret_value() if settings.mcp_bearer_token else None
    app.add_middleware(GatewayGuard, hosts=host_rules(settings), mcp_path=settings.mcp_path, token=token)
    app.state.service = service
    app.state.supervisor = supervisor
    return app
