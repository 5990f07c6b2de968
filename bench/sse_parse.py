"""How fast the event stream is parsed: the gateway's own line parser against httpx2's
EventSource, on the same recorded-shape stream (mostly ignored frames, as OpenCode sends).

`python -m bench.sse_parse` prints frames per second for both (median of 5 runs).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import httpx2

from opencode_mcp_gateway.opencode import _events

FRAMES = 20_000


def stream_bytes(frames: int = FRAMES) -> bytes:
    """One frame in ten is a state event; the rest are deltas and sync copies, as in a run."""
    out = []
    for n in range(frames):
        if n % 10 == 0:
            payload = {"type": "session.status", "properties": {"sessionID": "ses_1", "status": {"type": "busy"}}}
        elif n % 2:
            payload = {"type": "message.part.delta", "properties": {"delta": "word " * 20, "sessionID": "ses_1"}}
        else:
            payload = {"type": "sync", "properties": {"info": {"id": "msg_1", "text": "x" * 400}}}
        frame = {"directory": "/srv/project", "payload": payload}
        out.append(f"data: {json.dumps(frame, separators=(',', ':'))}\n\n")
    return "".join(out).encode()


def client_for(body: bytes) -> httpx2.AsyncClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        chunks = [body[i : i + 16_384] for i in range(0, len(body), 16_384)]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=_Chunks(chunks))

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="http://opencode.test")


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def with_lines(response: httpx2.Response) -> int:
    return sum([1 async for _ in _events._parse_sse(response.aiter_lines())])


async def with_event_source(response: httpx2.Response) -> int:
    kept = 0
    async for sse in httpx2.EventSource(response, max_event_size=None):
        if _events._frame_type(sse.data) in _events._IGNORED:
            continue
        frame = json.loads(sse.data)
        payload = frame.get("payload", frame)
        kept += isinstance(payload, dict) and isinstance(payload.get("type"), str)
    return kept


async def timed(parse: Callable[[httpx2.Response], Awaitable[int]], body: bytes) -> float:
    async with client_for(body) as client, client.stream("GET", "/global/event") as response:
        started = time.perf_counter()
        await parse(response)
        return time.perf_counter() - started


async def main() -> None:
    body = stream_bytes()
    for name, parse in (("line parser (ours)", with_lines), ("httpx2 EventSource", with_event_source)):
        runs = [await timed(parse, body) for _ in range(5)]
        print(f"{name}: {FRAMES / statistics.median(runs):,.0f} frames/s")


if __name__ == "__main__":
    anyio.run(main)
