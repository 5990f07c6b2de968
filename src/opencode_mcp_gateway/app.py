"""The ASGI application: probes, the guard, the MCP endpoint, and the background work."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from .auth import build_authenticator, metadata_routes
from .config import Settings
from .edge import LOCAL_NAMES, Drain, GatewayGuard, HostRules, HostWatch, OriginRules, SessionQuota, SessionRouter
from .fleet import TaskPool, Worker, build_worker
from .observability import metrics
from .observability.logs import RequestIds
from .opencode import EventHub, OpenCodeClient
from .opencode.llm_proxy import LLMProxy
from .opencode.supervisor import OpenCodeSupervisor
from .tools import build_server
from .webhooks import Deliverer, Duty, Signer, Watcher

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
    sandboxes = None
    if settings.sandboxed:  # each caller (or task) an OpenCode of its own: no shared one runs
        from .fleet.sandboxes import SandboxKeys, build_manager, build_runtime, sandbox_llm_proxy, state_root

        shared = settings.request_state_key.get_secret_value() if settings.request_state_key else None
        keys = SandboxKeys.load(shared, state_root(settings))
        sandboxes = build_manager(settings, build_runtime(settings), keys)
        sandbox_proxy = sandbox_llm_proxy(settings, keys)
    elif settings.spawn_opencode and supervisor is None:
        supervisor = OpenCodeSupervisor(settings)
    password = settings.opencode_password.get_secret_value() if settings.opencode_password else None
    if supervisor is not None:
        password = supervisor.password
    # The split pod (split_pod.py): OpenCode in its own container, its model through this proxy.
    llm_proxy = LLMProxy.from_settings(settings) if supervisor is None and settings.llm_proxy_port else None
    if sandboxes is not None:
        llm_proxy = sandbox_proxy
    workers = []
    urls = {} if sandboxes is not None else settings.worker_urls  # one worker (w0) unless a pool is configured
    # A spawned OpenCode accepts connections before it can answer: its single client waits for
    # the supervisor. In a pool the spawned one is only one of the workers (reached by its pod
    # address), so no client waits on it: one not ready yet is simply not ready for placement.
    gate = supervisor if supervisor is not None and len(urls) == 1 else None
    for name, url in urls.items():
        client = OpenCodeClient(
            url,
            username=settings.opencode_username,
            password=password,
            timeout=settings.opencode_timeout_seconds,
            is_ready=(lambda: gate.ready) if gate is not None else None,
            worker=name,
            transport=opencode_transport,
        )
        hub = EventHub(client, gate=gate.wait_ready if gate is not None else None)
        workers.append(build_worker(settings, name, client, hub))
    authenticator = build_authenticator(settings)
    service = TaskPool(settings, workers, sandboxes)
    state_key = settings.request_state_key.get_secret_value() if settings.request_state_key else None
    mcp = build_server(service, settings, request_state_key=state_key)
    metrics.watch_sessions(lambda: len(getattr(mcp.session_manager, "_server_instances", {})))
    mcp_app = mcp.streamable_http_app(
        streamable_http_path=settings.mcp_path,
        # The guard in front does Host/Origin with the gateway's own rules.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=settings.host,
        max_sessions=settings.max_sessions,
        session_idle_timeout=settings.session_idle_timeout_seconds,
        max_request_body_size=settings.max_request_bytes,  # admits MAX_ATTACHMENTS of MAX_ATTACHMENT_BYTES
    )
    sessions = mcp.session_manager
    quota = SessionQuota(
        mcp_app,
        open_sessions=lambda: sessions._server_instances.keys(),  # the SDK keeps no public list
        per_client=settings.max_sessions_per_client,
    )

    peers = settings.peer_map
    # Outside the quota: it counts the SDK's own session ids; the router names them per replica.
    router = SessionRouter(quota, gateway_id=settings.gateway_id, peers=peers) if peers else None
    # A stopping replica's worker leaves placement everywhere (drain.py).
    drain = Drain(settings.gateway_id)
    hosts = settings.worker_hosts
    webhooks = settings.webhooks_enabled
    loads = {w.name: w.load for w in workers}
    watch = HostWatch(hosts, loads, drain, peers, every_peer=webhooks) if hosts or (peers and webhooks) else None
    deliverer, watcher_of = _webhooks(settings, watch)
    watchers = [watcher_of(w) for w in workers] if watcher_of else []
    if sandboxes is not None and watcher_of is not None:  # a sandbox's tasks are watched while it runs
        sandboxes.companions.append(lambda worker: watcher_of(worker).run)

    async def healthz(_: Request) -> JSONResponse:
        opencode, health = await service.health(timeout=2.0)
        return JSONResponse(
            {
                "gateway": "ok",
                "opencode": {"healthy": opencode.healthy, "version": opencode.version},
                "event_stream_connected": service.first.hub.connected if workers else service.event_stream_connected,
                "workers": {w.name: w.model_dump(exclude={"name"}) for w in health},
            }
        )

    checked: list[Any] = [-math.inf, None]  # when /readyz last asked the workers, and their answer
    fresh_for = 1.0 if peers else 0.0  # each peer asks every second: one health check serves them all

    async def readyz(_: Request) -> PlainTextResponse:
        """Ready while at least one worker answers (tasks of a worker that is down say so) and
        the replica is not stopping. The other replicas ask it too: their placement follows it."""
        if not drain.accepting:
            return PlainTextResponse("not ready: stopping (out of placement, still serving)", status_code=503)
        if time.monotonic() - checked[0] >= fresh_for:
            checked[:] = [time.monotonic(), await service.health(timeout=2.0)]
        opencode, health = checked[1]
        for worker in health:
            metrics.OPENCODE_UP.labels(worker.name).set(1 if worker.healthy else 0)
        if opencode.healthy:
            return PlainTextResponse("ready")
        return PlainTextResponse(f"not ready: {opencode.error or 'OpenCode reports unhealthy'}", status_code=503)

    async def prometheus(_: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            if supervisor is not None:
                tg.start_soon(supervisor.run)
            if llm_proxy is not None:
                tg.start_soon(llm_proxy.serve)
            for worker in workers:
                tg.start_soon(worker.run)
            if sandboxes is not None:
                tg.start_soon(sandboxes.run)
            if watch is not None:
                tg.start_soon(watch.run)
            if deliverer is not None:
                tg.start_soon(deliverer.run)
            for watcher in watchers:
                tg.start_soon(watcher.run)
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
            if llm_proxy is not None:
                llm_proxy.close()
            for worker in workers:
                await worker.client.aclose()
            await authenticator.aclose()
            if router is not None:
                await router.aclose()
            if watch is not None:
                await watch.aclose()
            if deliverer is not None:
                await deliverer.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
            *metadata_routes(settings),  # RFC 9728, only with OAuth
            Mount("/", app=router or quota),
        ],
        lifespan=lifespan,
    )
    origins = OriginRules(settings.allowed_origin_list, settings.allowed_host_list, loopback=settings.binds_loopback)
    app.add_middleware(
        GatewayGuard, hosts=host_rules(settings), origins=origins, mcp_path=settings.mcp_path, auth=authenticator
    )
    app.add_middleware(RequestIds)  # outermost: even a refused request's log line has an id
    app.state.service = service
    app.state.supervisor = supervisor
    app.state.drain = drain
    return app


def _webhooks(
    settings: Settings, watch: HostWatch | None
) -> tuple[Deliverer | None, Callable[[Worker], Watcher] | None]:
    """Completion webhooks (webhooks/): one deliverer, and how to watch a worker (each static
    worker from the start, each sandbox's while it runs)."""
    if not settings.webhooks_enabled or settings.webhook_secret is None:
        return None, None
    deliverer = Deliverer(
        Signer(settings.webhook_secret.get_secret_value()),
        retry_seconds=settings.webhook_retry_seconds,
        attempt_timeout=settings.webhook_attempt_timeout_seconds,
        backoff_seconds=settings.webhook_backoff_seconds,
    )
    peers = settings.peer_map
    duty = Duty(settings.gateway_id, list(peers), settings.worker_hosts, watch.ready if watch else lambda _: True)

    def watcher_of(w: Worker) -> Watcher:
        return Watcher(
            w.name,
            w.client,
            w.hub,
            w.service,
            deliverer,
            duty,
            allow_list=settings.webhook_allow_list,
            deployment_url=settings.webhook_url,
            first_sweep_after=2.0 if peers else 0.0,  # two rounds of the peers' readiness
        )

    log.info(
        "webhooks on: %d WEBHOOK_URL_ALLOWLIST prefixes, %s, failing deliveries retried for %gs",
        len(settings.webhook_allow_list),
        "a deployment-wide WEBHOOK_URL" if settings.webhook_url else "no WEBHOOK_URL",
        settings.webhook_retry_seconds,
    )
    return deliverer, watcher_of
