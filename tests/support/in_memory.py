"""The gateway's real parts wired to the fake OpenCode, in one process, with no sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import mcp
from mcp.server.mcpserver import MCPServer

from opencode_mcp_gateway.config import Settings
from opencode_mcp_gateway.fleet.pool import TaskPool, build_worker
from opencode_mcp_gateway.opencode import EventHub, OpenCodeClient
from opencode_mcp_gateway.tasks import PermissionBroker, TaskService
from opencode_mcp_gateway.tools import build_server
from tests.support.fake_opencode import FakeOpenCode

LEGACY = "legacy"  # the initialize handshake: protocol 2025-11-25, elicitation mid-call
MODERN = "2026-07-28"  # no back-channel: input-required results
OPENCODE_URL = "http://opencode.test"


@dataclass
class InMemoryGateway:
    fake: FakeOpenCode
    settings: Settings
    client: OpenCodeClient
    hub: EventHub
    broker: PermissionBroker
    service: TaskService
    server: MCPServer

    def mcp(self, mode: str = LEGACY, **options: Any) -> mcp.Client:
        """An MCP client on the real tools; `mode` picks the protocol era."""
        return mcp.Client(self.server, mode=mode, **options)


def settings_for(**overrides: Any) -> Settings:
    return Settings(_env_file=None, opencode_base_url=OPENCODE_URL, **overrides)  # type: ignore[call-arg]


@asynccontextmanager
async def in_memory_gateway(fake: FakeOpenCode | None = None, **overrides: Any) -> AsyncIterator[InMemoryGateway]:
    """Settings come from `overrides` (lower-case Settings field names)."""
    fake = fake or FakeOpenCode()
    settings = settings_for(**overrides)
    client = OpenCodeClient(OPENCODE_URL, transport=fake.transport, password=fake.password)
    hub = EventHub(client)
    worker = build_worker(settings, "w0", client, hub)  # the one worker of a gateway without a pool
    broker, service = worker.broker, worker.service
    gateway = InMemoryGateway(
        fake, settings, client, hub, broker, service, build_server(TaskPool(settings, [worker]), settings)
    )
    try:
        async with anyio.create_task_group() as tg:
            # the worker's background work, less the tracker, workspaces and health (not needed here)
            tg.start_soon(hub.run)
            tg.start_soon(broker.run)
            tg.start_soon(worker.load.run)
            tg.start_soon(service.session_errors.run)
            assert await hub.wait_connected(5), "the event stream did not connect"
            yield gateway
            tg.cancel_scope.cancel()
    finally:
        await client.aclose()
        fake.cut_stream()
