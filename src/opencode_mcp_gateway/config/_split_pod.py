"""The rule of the chart's split pod, as settings: which secrets never go to the OpenCode
container, and what each side needs (the runtime part is opencode/split_pod.py)."""

from __future__ import annotations

from typing import Protocol

from ._values import given


class _Sides(Protocol):
    """What the rule reads of the settings (the rest by name, with getattr)."""

    @property
    def opencode_only(self) -> bool: ...
    @property
    def spawn_opencode(self) -> bool: ...
    @property
    def llm_proxy_port(self) -> int | None: ...


# Settings that hold a secret of the gateway's, or the path to one: never the OpenCode container's.
GATEWAY_ONLY = (
    "opencode_api_key",
    "mcp_bearer_token",
    "request_state_key",
    "git_credentials_file",
    "mcp_api_keys_file",
    "webhook_secret",
)
OPENCODE_NEEDS = ("opencode_model_name", "llm_proxy_port", "llm_proxy_token", "opencode_password")
GATEWAY_PROXY_NEEDS = ("opencode_api_url", "opencode_api_key", "llm_proxy_token")


def _names(settings: _Sides, fields: tuple[str, ...], *, present: bool) -> str:
    return ", ".join(name.upper() for name in fields if given(getattr(settings, name)) == present)


def split_pod_problem(settings: _Sides) -> str | None:
    """Why these settings cannot make one side of the split pod (None: they can)."""
    if settings.opencode_only:
        if settings.spawn_opencode:
            return "`opencode-mcp-gateway opencode` runs OpenCode alone: unset SPAWN_OPENCODE for it"
        held = _names(settings, GATEWAY_ONLY, present=True)
        if held:
            return (
                f"{held}: not for the OpenCode container (`opencode-mcp-gateway opencode`), whose agent can "
                "read everything OpenCode can; give it to the gateway's container only"
            )
        missing = _names(settings, OPENCODE_NEEDS, present=False)
        if missing:
            return (
                f"{missing}: required by `opencode-mcp-gateway opencode` (the model's name, the gateway's "
                "LLM proxy port and token, and OpenCode's server password, which the gateway is given too)"
            )
    elif settings.llm_proxy_port is not None and not settings.spawn_opencode:
        missing = _names(settings, GATEWAY_PROXY_NEEDS, present=False)
        if missing:
            return (
                f"{missing}: required with LLM_PROXY_PORT, where the gateway serves its OpenCode container "
                "the model provider (OPENCODE_API_URL, with OPENCODE_API_KEY) to callers holding LLM_PROXY_TOKEN"
            )
    return None
