"""One place for each version: every other place derives from it or, where a tool needs a
literal (npm, helm), agrees with it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import opencode_mcp_gateway
from opencode_mcp_gateway.opencode import setup
from opencode_mcp_gateway.opencode.pins import OPENCODE_VERSION

REPO = Path(__file__).resolve().parents[2]


def test_the_gateway_version_is_pyprojects() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert opencode_mcp_gateway.__version__ == declared
    chart = (REPO / "chart" / "Chart.yaml").read_text()
    assert re.search(rf'^appVersion: "{re.escape(declared)}"$', chart, re.MULTILINE), "chart/Chart.yaml appVersion"


def test_the_opencode_pin_is_pins_py() -> None:
    npm = json.loads((REPO / ".tools" / "package.json").read_text())["dependencies"]["opencode-ai"]
    assert npm == OPENCODE_VERSION, ".tools/package.json must pin the opencode-ai of opencode/pins.py"
    assert setup.PLUGIN_VERSION == OPENCODE_VERSION


def test_the_dockerfile_states_no_version_of_its_own() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert OPENCODE_VERSION not in dockerfile and opencode_mcp_gateway.__version__ not in dockerfile
    assert "COPY src/opencode_mcp_gateway/opencode/pins.py" in dockerfile
    assert "--require-hashes -r requirements.lock" in dockerfile


def test_the_locks_hold_every_declared_dependency() -> None:
    """A dependency added to pyproject.toml without `make lock` would never be installed."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for lock, declared in (
        ("requirements.lock", project["dependencies"]),
        ("requirements-dev.lock", project["dependencies"] + project["optional-dependencies"]["dev"]),
    ):
        pinned = {
            m.lower().replace("_", "-") for m in re.findall(r"^([A-Za-z0-9_.-]+)==", (REPO / lock).read_text(), re.M)
        }
        names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared}
        assert names <= pinned, f"{lock} lacks {sorted(names - pinned)}: run `make lock`"


def test_the_locks_pin_every_package_with_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        entries = re.findall(
            r"^([A-Za-z0-9_.-]+)==\S+ \\\n((?:\s+--hash=sha256:\w+(?: \\)?\n)+)", (REPO / lock).read_text(), re.M
        )
        names = {name.lower() for name, _ in entries}
        assert {"mcp", "httpx2", "pydantic", "starlette", "uvicorn"} <= names, lock
    dev = (REPO / "requirements-dev.lock").read_text()
    assert "pytest==" in dev and "coverage==" in dev and "mypy==" in dev
