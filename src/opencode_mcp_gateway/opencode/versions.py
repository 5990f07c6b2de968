"""Which OpenCode answers at a URL, and whether this gateway speaks its server API.

Each major version reports its version in its own place: 1.x at `GET /global/health`
(`{"healthy": true, "version": "1.18.33"}`), 2.x (which moved the server API under
`/api/…` and dropped `/global/health`) at `GET /api/info`. A version outside
`pins.OPENCODE_SUPPORTED`, or no version anywhere, is refused with words that name what
was found and what is supported: the same words in /readyz, health_check and a refused task.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import OpenCodeNotAPI, OpenCodeNotFound, OpenCodeRequestError, OpenCodeUnsupported
from ._models import Health
from .pins import OPENCODE_SUPPORTED

# How long a verdict of "supported" stands before a submit asks again (a restart may
# bring another binary); a refusal is never remembered, so a fixed OpenCode counts at once.
GOOD_FOR_SECONDS = 60.0


def _numbers(version: str) -> tuple[int, ...] | None:
    """1.18.33 → (1, 18, 33); a pre-release or build suffix is ignored; None if not a version."""
    match = re.match(r"^v?(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(n) for n in match.group(1).split(".")) if match else None


def supported_range() -> str:
    low, high = OPENCODE_SUPPORTED
    return f"{low} up to (not including) {high}"


def is_supported(version: str) -> bool:
    found, low, high = _numbers(version), _numbers(OPENCODE_SUPPORTED[0]), _numbers(OPENCODE_SUPPORTED[1])
    return found is not None and low is not None and high is not None and low <= found < high


async def detect(get: Callable[[str], Awaitable[Any]], url: str) -> Health:
    """The health of the OpenCode at `url` (`get`: a JSON GET on it), if it is a supported one."""
    try:
        found = Health.model_validate(await get("/global/health"))
    except (OpenCodeNotFound, OpenCodeNotAPI):  # no such route (2.x), or a web page in its place
        try:
            info = await get("/api/info")
        except (OpenCodeNotFound, OpenCodeNotAPI, OpenCodeRequestError):
            info = None
        version = info.get("version") if isinstance(info, dict) else None
        found = Health(healthy=False, version=str(version) if version else None)
    return check(found, url)


def check(health: Health, url: str) -> Health:
    """`health` if its version is one this gateway speaks; else OpenCodeUnsupported."""
    version = health.version
    if version is None:
        raise OpenCodeUnsupported(
            f"no supported OpenCode answers at {url}: it reports no version at /global/health (OpenCode 1.x) "
            f"or /api/info (OpenCode 2.x). This gateway supports OpenCode {supported_range()}",
            None,
        )
    if not is_supported(version):
        raise OpenCodeUnsupported(
            f"OpenCode {version} at {url} is not supported: this gateway supports OpenCode {supported_range()}. "
            f"Run a supported opencode-ai, or a gateway release made for OpenCode {version}",
            version,
        )
    return health


class VersionGate:
    """Tasks are refused while the OpenCode behind is not a supported one."""

    def __init__(self, detect: Callable[[], Awaitable[Health]]) -> None:
        self._detect = detect  # raises OpenCodeUnsupported (or unavailable)
        self._good_until = 0.0

    async def require(self) -> None:
        if time.monotonic() < self._good_until:
            return
        await self._detect()
        self._good_until = time.monotonic() + GOOD_FOR_SECONDS
