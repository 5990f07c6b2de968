"""Spawn mode: run `opencode serve` as a child, keep it up, stop it with the gateway.

* The config is generated (one OpenAI-compatible provider, only it enabled, models fetch
  and auto-update off) and passed in OPENCODE_CONFIG_CONTENT. The provider is the
  gateway's own LLM proxy (llm_proxy.py) with a per-start token: the real API key never
  reaches OpenCode, whose agent can read its environment. The child's environment carries
  none of the gateway's settings (secrets included), only OpenCode's own server password.
* State lives in isolated XDG dirs under OPENCODE_STATE_DIR; the plugin OpenCode would
  fetch from npm on first use is pre-seeded, so no network is needed at run time.
* Ready means the "listening on" line was printed and /global/health answered: OpenCode
  accepts TCP ~0.2 s before it can serve, and a request sent then hangs forever.
* `opencode-mcp-gateway opencode` (OPENCODE_ONLY, split_pod.py) runs this supervisor
  without the proxy: OpenCode alone in its container, its model through the gateway
  container's proxy at LLM_PROXY_PORT.
* If OpenCode dies it is restarted with back-off (1 s doubling to 30 s), and its last
  output lines are logged (with the password and API key masked) to show why.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
from collections import deque
from pathlib import Path

import anyio
import httpx2

from ..config import Settings
from ..observability import metrics
from ..primitives import Backoff
from .llm_proxy import LLMProxy, proxy_url
from .setup import OFFLINE_ENV, default_state_dir, find_binary, gateway_setting, opencode_config, prepare_state

log = logging.getLogger(__name__)

LISTENING = "opencode server listening on"
LAST_LINES = 20  # of OpenCode's output, logged when it dies


class OpenCodeSupervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        given = settings.opencode_password.get_secret_value() if settings.opencode_password else None
        # A per-start secret when none is given: nothing else in the pod can drive OpenCode.
        self.password = given or secrets.token_urlsafe(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = anyio.Event()
        self._stopping = False
        self.restarts = 0
        self.last_exit: int | None = None
        # The model's endpoint: the proxy this process serves, or (OpenCode alone in its
        # container) the one the gateway's container serves on the pod's loopback.
        self._llm_proxy = None if settings.opencode_only else LLMProxy.from_settings(settings)
        if self._llm_proxy is not None:
            self.llm_url, self.llm_token = self._llm_proxy.base_url, self._llm_proxy.token
        else:
            self.llm_url = proxy_url(settings.llm_proxy_port or 0)
            self.llm_token = settings.llm_proxy_token.get_secret_value() if settings.llm_proxy_token else ""
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)

    @property
    def llm_proxy(self) -> LLMProxy:
        if self._llm_proxy is None:
            raise RuntimeError("OpenCode alone (OPENCODE_ONLY): its LLM proxy runs in the gateway's container")
        return self._llm_proxy

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def child_env(self) -> dict[str, str]:
        s = self.settings
        state = Path(s.opencode_state_dir) if s.opencode_state_dir else default_state_dir()
        env = {k: v for k, v in os.environ.items() if not gateway_setting(k)}
        env.update(prepare_state(state))
        env.update(OFFLINE_ENV)
        env.update(
            {
                "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(s)),
                "LLM_PROXY_URL": self.llm_url,
                "LLM_PROXY_TOKEN": self.llm_token,
                "OPENCODE_MODEL_NAME": s.opencode_model_name or "",
                "OPENCODE_SERVER_USERNAME": s.opencode_username,
                "OPENCODE_SERVER_PASSWORD": self.password,
                "OPENCODE_DISABLE_CLAUDE_CODE": "1",
            }
        )
        return env

    def command(self) -> list[str]:
        binary = find_binary(self.settings.opencode_bin)
        host = self.settings.opencode_listen_host
        return [binary, "serve", "--hostname", host, "--port", str(self.settings.opencode_port)]

    def prestart(self) -> None:
        """Start OpenCode now, before the gateway's slow imports, so both boot in parallel."""
        self._process = self._spawn(self.settings.workspace_dir or os.getcwd())

    def _spawn(self, workdir: str) -> subprocess.Popen[bytes]:
        log.info("starting opencode serve on port %s in %s", self.settings.opencode_port, workdir)
        return subprocess.Popen(
            self.command(),
            cwd=workdir,
            env=self.child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's SIGINT reaches us; we forward it, once
        )

    async def run(self) -> None:
        """Serve the LLM proxy (if this process has it), and keep OpenCode running until `stop`."""
        async with anyio.create_task_group() as tg:
            if self._llm_proxy is not None:
                tg.start_soon(self._llm_proxy.serve)
            await self._keep_running()
            tg.cancel_scope.cancel()

    async def _keep_running(self) -> None:
        backoff = Backoff(1.0, 30.0)
        workdir = self.settings.workspace_dir or os.getcwd()
        while not self._stopping:
            started = anyio.current_time()
            try:
                await self._run_once(self._process or self._spawn(workdir))
            except FileNotFoundError as exc:
                log.error("%s", exc)
            if self._stopping:
                return
            self._ready = anyio.Event()
            if anyio.current_time() - started > 60:
                backoff.reset()  # it ran a good while: this exit is not part of a crash loop
            self.restarts += 1
            metrics.OPENCODE_RESTARTS.inc()
            self._log_last_lines()
            log.warning("opencode serve exited (code %s); restarting in %.0f s", self.last_exit, backoff.delay)
            await backoff.sleep()

    async def _run_once(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pump_output, process)
                self.last_exit = await anyio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
                tg.cancel_scope.cancel()
        finally:
            if process.poll() is None:  # cancelled: the gateway is shutting down
                with anyio.CancelScope(shield=True):
                    await self._terminate(process, grace=10.0)
            self._process = None

    async def _pump_output(self, process: subprocess.Popen[bytes]) -> None:
        """Watch for the listening line, and keep draining so OpenCode never blocks on a full pipe."""
        assert process.stdout is not None
        while raw := await anyio.to_thread.run_sync(process.stdout.readline, abandon_on_cancel=True):
            line = raw.decode(errors="replace").rstrip()
            self.last_lines.append(line)
            if LISTENING in line and not self._ready.is_set():
                await self._confirm_health()
            log.debug("opencode: %s", line)

    def _log_last_lines(self) -> None:
        secrets_ = [self.password, self.llm_token]
        if self.settings.opencode_api_key:
            secrets_.append(self.settings.opencode_api_key.get_secret_value())
        lines = list(self.last_lines)
        self.last_lines.clear()
        for secret in filter(None, secrets_):
            lines = [line.replace(secret, "***") for line in lines]
        shown = "\n".join(f"  {line}" for line in lines) or "  (no output)"
        log.warning("opencode serve died; its last %d output lines:\n%s", len(lines), shown)

    async def _confirm_health(self) -> None:
        url = f"http://127.0.0.1:{self.settings.opencode_port}/global/health"
        auth = httpx2.BasicAuth(self.settings.opencode_username, self.password)
        async with httpx2.AsyncClient(auth=auth, timeout=0.5) as http:
            for _ in range(60):
                try:
                    if (await http.get(url)).status_code == 200:
                        log.info("opencode serve is ready")
                        self._ready.set()
                        return
                except httpx2.HTTPError:
                    pass
                await anyio.sleep(0.1)
        log.error("opencode serve printed its listening line but does not answer health checks")

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        if self._process is not None:
            await self._terminate(self._process, grace)
        if self._llm_proxy is not None:
            self._llm_proxy.close()

    async def _terminate(self, process: subprocess.Popen[bytes], grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        self._stopping = True
        if process.poll() is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        with anyio.move_on_after(grace):
            code = await anyio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
            if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM):  # OpenCode ends by the signal itself
                log.info("opencode serve stopped cleanly")
            else:
                log.warning("opencode serve stopped with exit code %s", code)
            return
        log.warning("opencode serve ignored SIGTERM for %.0f s; killing it", grace)
        process.kill()
        await anyio.to_thread.run_sync(process.wait)
