"""Agents and models OpenCode offers, cached briefly, refreshed on a miss."""

from __future__ import annotations

import time

from ..opencode import Agent, OpenCodeClient
from .errors import TaskError


class UnknownChoice(TaskError):
    """An agent or model OpenCode does not offer; the message lists what exists."""


class Catalog:
    def __init__(self, client: OpenCodeClient, ttl: float = 30.0) -> None:
        self._client = client
        self._ttl = ttl
        self._agents: dict[str | None, tuple[float, list[Agent]]] = {}
        self._models: dict[str | None, tuple[float, dict[str, list[str]]]] = {}
        self._seeing: dict[str | None, set[str]] = {}  # provider/model ids that take image input

    async def agents(self, directory: str | None = None, *, fresh: bool = False) -> list[Agent]:
        cached = self._agents.get(directory)
        if fresh or cached is None or time.monotonic() - cached[0] > self._ttl:
            cached = (time.monotonic(), await self._client.agents(directory))
            self._agents[directory] = cached
        return cached[1]

    async def models(self, directory: str | None = None, *, fresh: bool = False) -> dict[str, list[str]]:
        cached = self._models.get(directory)
        if fresh or cached is None or time.monotonic() - cached[0] > self._ttl:
            data = await self._client.providers(directory)
            models = {str(p["id"]): sorted(str(m) for m in (p.get("models") or {})) for p in data.get("providers", [])}
            self._seeing[directory] = {
                f"{p['id']}/{name}"
                for p in data.get("providers", [])
                for name, m in (p.get("models") or {}).items()
                if isinstance(m, dict) and ((m.get("capabilities") or {}).get("input") or {}).get("image")
            }
            cached = (time.monotonic(), models)
            self._models[directory] = cached
        return cached[1]

    async def check_agent(self, name: str, directory: str | None) -> None:
        for fresh in (False, True):
            agents = await self.agents(directory, fresh=fresh)
            if any(a.name == name for a in agents):
                return
        usable = ", ".join(a.name for a in agents if a.usable)
        raise UnknownChoice(f"unknown agent {name!r}; OpenCode offers: {usable}")

    async def check_model(self, model: str, directory: str | None) -> tuple[str, str]:
        provider, _, model_id = model.partition("/")
        if not provider or not model_id:
            raise UnknownChoice(f"model {model!r} must be written provider/model, for example openai/gpt-4o")
        for fresh in (False, True):
            models = await self.models(directory, fresh=fresh)
            if model_id in models.get(provider, ()):
                return provider, model_id
        offered = "; ".join(f"{p}/{m}" for p, ms in models.items() for m in ms[:20]) or "none"
        raise UnknownChoice(f"unknown model {model!r}; OpenCode offers: {offered}")

    async def check_images(self, provider_model: tuple[str, str], directory: str | None) -> None:
        """Images only for a model that takes them: OpenCode would replace them with an error
        text, and the caller would learn it from the model, if at all."""
        await self.models(directory)
        name = "/".join(provider_model)
        if name not in self._seeing.get(directory, set()):
            raise UnknownChoice(
                f"model {name!r} does not take image input (its OpenCode configuration has no image "
                "modality): send the images to a model that does, or send no images"
            )
