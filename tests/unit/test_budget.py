"""Budgets: choosing a task's limits, recording them, explaining an over-budget abort."""

from __future__ import annotations

import pytest

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.opencode import MessageInfo, Session
from opencode_mcp_gateway.opencode.setup import opencode_config
from opencode_mcp_gateway.tasks.budget import Budget, BudgetError, explain, resolve
from opencode_mcp_gateway.tasks.permissions import session_metadata
from opencode_mcp_gateway.tasks.state import TurnState, message_figures


def limits(tokens: int | None = None, cost: float | None = None, **settings: float | None) -> Budget:
    defaults = {"default_tokens": None, "default_cost": None, "ceiling_tokens": None, "ceiling_cost": None}
    return resolve(tokens, cost, **{**defaults, **settings})  # type: ignore[arg-type]


def test_no_settings_no_request_means_no_limit() -> None:
    assert limits().unlimited and limits().as_metadata() is None


def test_the_call_lowers_the_default_and_the_default_applies_otherwise() -> None:
    assert limits(default_tokens=1000) == Budget(max_tokens=1000)
    assert limits(tokens=10, default_tokens=1000) == Budget(max_tokens=10)
    assert limits(cost=0.5, default_cost=2.0) == Budget(max_cost_usd=0.5)


def test_the_ceiling_bounds_a_call_and_stands_in_for_a_missing_default() -> None:
    with pytest.raises(BudgetError, match="TASK_MAX_TOKENS_CEILING=500"):
        limits(tokens=501, ceiling_tokens=500)
    with pytest.raises(BudgetError, match="TASK_MAX_COST_USD_CEILING=1"):
        limits(cost=1.5, ceiling_cost=1.0)
    assert limits(tokens=500, ceiling_tokens=500) == Budget(max_tokens=500)
    assert limits(ceiling_tokens=500, ceiling_cost=2) == Budget(max_tokens=500, max_cost_usd=2)


def test_the_message_names_the_budget_and_the_figures() -> None:
    budget = Budget(max_tokens=10_000, max_cost_usd=0.3)
    assert budget.exceeded(12_345, 0.1) == "budget exceeded: 12,345 tokens > max_tokens 10,000"
    assert budget.exceeded(10_000, 0.4) == "budget exceeded: $0.4000 > max_cost_usd 0.3"
    assert budget.exceeded(10_000, 0.3) is None


def test_the_budget_round_trips_through_the_session_metadata() -> None:
    budget = Budget(max_tokens=100, max_cost_usd=0.25)
    metadata = session_metadata("allow", budget=budget.as_metadata())
    assert metadata == {
        "createdBy": "opencode-mcp-gateway",
        "permissionPolicy": "allow",
        "budget": {"max_tokens": 100, "max_cost_usd": 0.25},
    }
    assert Budget.of_session(Session(id="ses_1", metadata=metadata)) == budget
    assert Budget.of_session(Session(id="ses_1", metadata=session_metadata("allow"))).unlimited
    assert Budget.of_session(Session.model_validate({"id": "ses_1", "metadata": None})).unlimited


@pytest.mark.parametrize(
    ("status", "tokens", "expected"),
    [
        ("aborted", 240, ("aborted", "budget exceeded: 240 tokens > max_tokens 200")),
        ("failed", 240, ("aborted", "budget exceeded: 240 tokens > max_tokens 200")),  # stopped between steps
        ("aborted", 120, ("aborted", "was")),  # a user's abort within budget stays one
        ("completed", 240, ("completed", None)),  # the last step cannot be undone
        ("running", 240, ("running", None)),
    ],
)
def test_explain_an_ended_task_that_broke_its_budget(
    status: str, tokens: int, expected: tuple[str, str | None]
) -> None:
    state = TurnState(status=status, error="was" if status in ("aborted", "failed") else None)  # type: ignore[arg-type]
    state.tokens = {"input": tokens - 40, "output": 40}
    explain(state, Budget(max_tokens=200))
    assert (state.status, state.error) == expected


def test_message_figures_read_opencodes_shape() -> None:
    tokens = {"input": 100, "output": 20, "reasoning": 5, "cache": {"read": 7, "write": 1}}
    info = MessageInfo.model_validate({"id": "msg_1", "role": "assistant", "tokens": tokens, "cost": 0.2})
    counts, cost = message_figures(info)
    assert counts == {"input": 100, "output": 20, "reasoning": 5, "cache_read": 7, "cache_write": 1}
    bare = MessageInfo.model_validate({"id": "msg_2", "role": "assistant", "tokens": None})
    assert cost == 0.2 and message_figures(bare) == ({k: 0 for k in counts}, 0.0)


def test_a_default_above_its_ceiling_stops_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.setenv("TASK_MAX_COST_USD", "5")
    monkeypatch.setenv("TASK_MAX_COST_USD_CEILING", "1")
    with pytest.raises(ConfigError, match=r"TASK_MAX_COST_USD .* must not exceed TASK_MAX_COST_USD_CEILING"):
        load_settings()


def test_spawn_mode_prices_the_model_only_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    model = "{env:OPENCODE_MODEL_NAME}"
    plain = opencode_config(load_settings())
    assert "cost" not in plain["provider"]["gateway"]["models"][model]
    priced = opencode_config(load_settings(model_cost_input_per_mtok=3, model_cost_output_per_mtok=15))
    assert priced["provider"]["gateway"]["models"][model]["cost"] == {"input": 3, "output": 15}
