"""`opencode-mcp-gateway`: parse flags, validate settings, serve."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Generator

import uvicorn

from . import __version__, logs, tracing
from .config import ConfigError, Settings, load_settings
from .opencode import redact_url

log = logging.getLogger("opencode_mcp_gateway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="opencode-mcp-gateway",
        description="MCP server (Streamable HTTP) that hands coding tasks to OpenCode. "
        "Configured by environment variables (see the README).",
    )
    parser.add_argument(
        "--spawn-opencode",
        action="store_true",
        default=None,
        help="also start `opencode serve` as a child (same as SPAWN_OPENCODE=true)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {"spawn_opencode": True} if args.spawn_opencode else {}
    try:
        settings = load_settings(**overrides)
        if settings.spawn_opencode:
            from .supervisor import find_binary

            find_binary(settings.opencode_bin)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"opencode-mcp-gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(settings)


def serve(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)
    if not settings.allowed_host_list and not settings.binds_loopback:
        log.warning(
            "HOST=%s without ALLOWED_HOSTS: any Host header is accepted. Set ALLOWED_HOSTS to the names "
            "clients use (e.g. gateway.example.com,localhost) to protect against DNS rebinding.",
            settings.host,
        )
    supervisor = None
    if settings.spawn_opencode:
        from .supervisor import OpenCodeSupervisor

        supervisor = OpenCodeSupervisor(settings)
        supervisor.prestart()  # OpenCode boots while the rest of the gateway imports
    from .app import create_app

    app = create_app(settings, supervisor)
    stop_tracing = tracing.setup(settings.otel_exporter_otlp_endpoint)
    log.info(
        "opencode-mcp-gateway %s: MCP at http://%s:%s%s, OpenCode at %s%s",
        __version__,
        settings.host,
        settings.port,
        settings.mcp_path,
        redact_url(settings.opencode_base_url),
        " (spawned)" if settings.spawn_opencode else "",
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        lifespan="on",
        log_config=None,  # uvicorn's records go to the root handler (JSON with LOG_FORMAT=json)
    )
    try:
        _Server(config).run()
    finally:
        stop_tracing()  # sends the spans still buffered


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown, so the process would report
    death by signal; a clean stop exits 0, as supervisors and kubelets expect."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()
