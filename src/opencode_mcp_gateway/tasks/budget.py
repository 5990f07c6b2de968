"""Per-task budgets: how many tokens and how much money one task may use.

A task's budget is chosen when it is submitted (the call's `max_tokens`/`max_cost_usd`,
else TASK_MAX_TOKENS/TASK_MAX_COST_USD, never above the *_CEILING settings) and stored in
the OpenCode session's metadata, so every gateway replica reads the same budget and
explains an over-budget abort the same way. `TaskTracker` enforces it while the task runs.

Tokens are everything the model processed for the task: input, output, reasoning and
cache reads and writes, summed over its model steps, as OpenCode reports them per
message. Cost is OpenCode's own figure (from the model's price list, or the prices set by
MODEL_COST_INPUT_PER_MTOK/MODEL_COST_OUTPUT_PER_MTOK in spawn mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..opencode import Session
from .errors import TaskError
from .state import TurnState


class BudgetError(TaskError):
    """A requested budget the settings do not allow; the message says what to ask for."""


@dataclass(frozen=True)
class Budget:
    max_tokens: int | None = None
    max_cost_usd: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_tokens is None and self.max_cost_usd is None

    def as_metadata(self) -> dict[str, Any] | None:
        """The session metadata entry (None: no budget)."""
        if self.unlimited:
            return None
        entry: dict[str, Any] = {}
        if self.max_tokens is not None:
            entry["max_tokens"] = self.max_tokens
        if self.max_cost_usd is not None:
            entry["max_cost_usd"] = self.max_cost_usd
        return entry

    @classmethod
    def of_session(cls, session: Session) -> Budget:
        entry = session.metadata.get("budget")
        if not isinstance(entry, dict):
            return cls()
        tokens, cost = entry.get("max_tokens"), entry.get("max_cost_usd")
        return cls(
            max_tokens=int(tokens) if isinstance(tokens, int | float) else None,
            max_cost_usd=float(cost) if isinstance(cost, int | float) else None,
        )

    def exceeded(self, tokens: int, cost: float) -> str | None:
        """Why `tokens`/`cost` break this budget, or None."""
        if self.max_tokens is not None and tokens > self.max_tokens:
            return f"budget exceeded: {tokens:,} tokens > max_tokens {self.max_tokens:,}"
        if self.max_cost_usd is not None and cost > self.max_cost_usd:
            return f"budget exceeded: ${cost:,.4f} > max_cost_usd {self.max_cost_usd:g}"
        return None


def token_total(tokens: dict[str, int]) -> int:
    """The figure max_tokens bounds, from a task's token counts (see the module doc)."""
    return sum(int(tokens.get(k) or 0) for k in ("input", "output", "reasoning", "cache_read", "cache_write"))


def choose(
    requested: float | None, default: float | None, ceiling: float | None, name: str, setting: str
) -> float | None:
    """The limit for one task: the request, else the default (else the ceiling)."""
    if requested is None:
        return default if default is not None else ceiling
    if ceiling is not None and requested > ceiling:
        raise BudgetError(f"{name} {requested:,g} is above the gateway's ceiling {setting}={ceiling:,g}: ask for less")
    return requested


def resolve(
    max_tokens: int | None,
    max_cost_usd: float | None,
    *,
    default_tokens: int | None,
    default_cost: float | None,
    ceiling_tokens: int | None,
    ceiling_cost: float | None,
) -> Budget:
    tokens = choose(max_tokens, default_tokens, ceiling_tokens, "max_tokens", "TASK_MAX_TOKENS_CEILING")
    cost = choose(max_cost_usd, default_cost, ceiling_cost, "max_cost_usd", "TASK_MAX_COST_USD_CEILING")
    return Budget(max_tokens=int(tokens) if tokens is not None else None, max_cost_usd=cost)


def explain(state: TurnState, budget: Budget) -> None:
    """An ended task that broke its budget was stopped for it (by this or another replica):
    its status is `aborted` and `error` names the budget and the figures. An abort between
    two model steps leaves OpenCode's turn looking cut short (`failed`), hence both."""
    if state.status not in ("aborted", "failed") or budget.unlimited:
        return
    reason = budget.exceeded(token_total(state.tokens), state.cost)
    if reason is not None:
        state.status, state.error = "aborted", reason


def for_call(settings: Settings, max_tokens: int | None, max_cost_usd: float | None) -> Budget:
    """The budget of a task submitted with these inputs, under the gateway's settings."""
    return resolve(
        max_tokens,
        max_cost_usd,
        default_tokens=settings.task_max_tokens,
        default_cost=settings.task_max_cost_usd,
        ceiling_tokens=settings.task_max_tokens_ceiling,
        ceiling_cost=settings.task_max_cost_usd_ceiling,
    )
