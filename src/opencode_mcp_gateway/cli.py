"""`opencode-mcp-gateway`: parse flags, validate settings, serve.

`opencode-mcp-gateway opencode` runs OpenCode alone instead, for the OpenCode container of
the chart's pod (split_pod.py)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import __version__
from .secret_env import make_undumpable, take_secrets_out_of_environ

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("opencode_mcp_gateway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="opencode-mcp-gateway",
        description="MCP server (Streamable HTTP) that hands coding tasks to OpenCode. "
        "Configured by environment variables (see the README).",
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("gateway", "opencode"),
        default="gateway",
        help="gateway (the default): serve MCP; opencode: run only `opencode serve`, configured as spawn "
        "mode does, its model through a gateway's LLM proxy at LLM_PROXY_PORT (the OpenCode container "
        "of the chart's pod: give it none of the gateway's secrets)",
    )
    parser.add_argument(
        "--spawn-opencode",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also start `opencode serve` as a child (same as SPAWN_OPENCODE=true; --no-spawn-opencode: "
        "SPAWN_OPENCODE=false, for a gateway whose OpenCode runs elsewhere)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides: dict[str, object] = {} if args.spawn_opencode is None else {"spawn_opencode": args.spawn_opencode}
    if args.mode == "opencode":
        overrides.update(opencode_only=True, spawn_opencode=False)
    if argv is None:  # the real process (not a call from a test): its /proc entries matter
        overrides.update(take_secrets_out_of_environ())  # may re-exec: before any heavy import
        make_undumpable()
    from .auth import exposure_refusal
    from .config import ConfigError, load_settings

    try:
        settings = load_settings(**overrides)
        if settings.spawn_opencode or settings.opencode_only:
            from .opencode.setup import find_binary

            find_binary(settings.opencode_bin)
        if settings.mcp_api_keys_file:
            from .auth import StaticTokens

            StaticTokens(None, settings.mcp_api_keys_file)  # an unusable keys file stops start-up here
    except (ConfigError, FileNotFoundError) as exc:
        print(f"opencode-mcp-gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    if settings.opencode_only:
        from .observability import logs
        from .opencode.split_pod import run_opencode_only

        logs.configure(settings.log_level, settings.log_format)
        run_opencode_only(settings)
        return
    refusal = exposure_refusal(settings) or sandbox_refusal(settings)
    if refusal:
        print(f"opencode-mcp-gateway: {refusal}", file=sys.stderr)
        sys.exit(2)
    serve(settings)


def sandbox_refusal(settings: Settings) -> str | None:
    """One line saying why sandboxes cannot run here, or None (they can, or they are off)."""
    if not settings.sandboxed:
        return None
    from .fleet.sandboxes import SandboxError, build_runtime

    try:
        problem = build_runtime(settings).problem()
    except SandboxError as exc:
        problem = str(exc)
    if problem is None:
        return None
    return (
        f"SANDBOX={settings.sandbox_scope} cannot run here: {problem}. Choices: fix that, set "
        "SANDBOX_RUNTIME=local or kubernetes, or SANDBOX=off (every caller's agent then shares one OpenCode)"
    )


def serve(settings: Settings) -> None:
    from .observability import logs, tracing
    from .opencode import redact_url

    logs.configure(settings.log_level, settings.log_format)
    if not settings.allowed_host_list and not settings.binds_loopback:
        log.warning(
            "HOST=%s without ALLOWED_HOSTS: any Host header is accepted. Set ALLOWED_HOSTS to the names "
            "clients use (e.g. gateway.example.com,localhost) to protect against DNS rebinding.",
            settings.host,
        )
    if settings.allow_unauthenticated and not settings.binds_loopback:
        log.warning("ALLOW_UNAUTHENTICATED=true: anyone who reaches HOST=%s can run coding tasks", settings.host)
    supervisor = None
    try:  # a taken LLM_PROXY_PORT stops start-up with one line, like a bad setting
        if settings.spawn_opencode and not settings.sandboxed:
            from .opencode.supervisor import OpenCodeSupervisor

            supervisor = OpenCodeSupervisor(settings)
            supervisor.prestart()  # OpenCode boots while the rest of the gateway imports
        from .app import create_app

        app = create_app(settings, supervisor)
    except OSError as exc:
        print(f"opencode-mcp-gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    stop_tracing = tracing.setup(settings.otel_exporter_otlp_endpoint)
    if settings.sandboxed:
        log.info(
            "opencode-mcp-gateway %s: MCP at http://%s:%s%s, an OpenCode sandbox per %s (SANDBOX_RUNTIME=%s)",
            __version__,
            settings.host,
            settings.port,
            settings.mcp_path,
            settings.sandbox_scope,
            settings.sandbox_runtime_kind,
        )
        _serve(settings, app, stop_tracing)
        return
    runs_it = settings.spawn_opencode and len(settings.worker_urls) == 1
    if not runs_it and (settings.mcp_api_keys_file or settings.oauth_issuer):
        log.warning(
            "callers share the OpenCode at %s, which this gateway does not run: their agents see each other's "
            "work (no sandbox per caller; SANDBOX=off)",
            ", ".join(redact_url(url) for url in settings.worker_urls.values()),
        )
    workers = settings.worker_urls
    log.info(
        "opencode-mcp-gateway %s: MCP at http://%s:%s%s, OpenCode at %s%s",
        __version__,
        settings.host,
        settings.port,
        settings.mcp_path,
        ", ".join(
            f"{name} {redact_url(url)}" if len(workers) > 1 else redact_url(url) for name, url in workers.items()
        ),
        " (spawned)" if settings.spawn_opencode else "",
    )
    if supervisor is None and settings.llm_proxy_port:
        log.info("serving OpenCode its model at http://127.0.0.1:%s/v1 (LLM_PROXY_PORT)", settings.llm_proxy_port)
    _serve(settings, app, stop_tracing)


def _serve(settings: Settings, app: Any, stop_tracing: Callable[[], None]) -> None:
    import gc

    import uvicorn

    from .edge import KEEP_ALIVE_SECONDS, GatewayServer

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,  # peers.py relays on pooled connections younger than this
        lifespan="on",
        log_config=None,  # uvicorn's records go to the root handler (JSON with LOG_FORMAT=json)
    )
    # Everything imported and built so far lives as long as the process: freezing it keeps the
    # collector from walking those ~100k objects again at every full collection (a 70 ms pause
    # each, 0.4 ms a call under load; docs/design.md "The cost of a call").
    gc.collect()
    gc.freeze()
    try:
        GatewayServer(
            config,
            on_exit=lambda: setattr(app.state.service, "shutting_down", True),
            drain_seconds=settings.shutdown_drain_seconds,
            on_drain=app.state.drain.start,
        ).run()
    finally:
        stop_tracing()  # sends the spans still buffered
