"""A replica that starts stopping (drain.py): not ready at once, still serving."""

from __future__ import annotations

import httpx2
import pytest

from opencode_mcp_gateway.app import create_app
from tests.support.client import INITIALIZE, MCP_HEADERS
from tests.support.fake_opencode import FakeOpenCode
from tests.support.in_memory import settings_for

pytestmark = pytest.mark.anyio


async def test_a_draining_replica_is_not_ready_but_still_serves() -> None:
    app = create_app(settings_for(host="127.0.0.1"), opencode_transport=FakeOpenCode().transport)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://localhost:8080") as http,
    ):
        assert (await http.get("/readyz")).status_code == 200
        app.state.drain.start()  # what the first SIGTERM does with SHUTDOWN_DRAIN_SECONDS
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and "stopping" in ready.text  # the peers stop placing on its worker
        assert (await http.get("/healthz")).status_code == 200  # not restarted by the liveness probe
        opened = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert opened.status_code == 200  # and it keeps answering MCP meanwhile
