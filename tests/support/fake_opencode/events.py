"""The fake's `/global/event`: every open stream gets each event, framed as 1.18.33 frames it."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import anyio
import httpx2
from anyio.streams.memory import MemoryObjectSendStream

from .turns import Json, new_id


class EventStream:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.muted = False
        self._listeners: list[MemoryObjectSendStream[str]] = []

    def open(self) -> httpx2.Response:
        """A new stream: `server.connected` first, then every event until `cut` or the reader hangs up."""
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        self._listeners.append(send)
        send.send_nowait(json.dumps({"payload": {"type": "server.connected", "properties": {}}}))

        async def frames() -> AsyncIterator[bytes]:
            try:
                async with receive:
                    async for frame in receive:
                        yield f"data: {frame}\n\n".encode()
            finally:  # the gateway hung up
                send.close()
                if send in self._listeners:
                    self._listeners.remove(send)

        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=frames())

    def cut(self) -> None:
        for send in self._listeners:
            send.close()
        self._listeners.clear()

    def emit(self, kind: str, properties: Json, directory: str | None) -> None:
        """One event, preceded by a `sync` copy as on the real stream (the gateway skips those)."""
        if self.muted:
            return
        payload = {"id": new_id("evt"), "type": kind, "properties": properties}
        where = {"directory": directory or self.directory, "project": "fakeproject"}
        sync = {**where, "payload": {"type": "sync", "id": payload["id"]}}
        for frame in (json.dumps(sync), json.dumps({**where, "payload": payload})):
            for send in list(self._listeners):
                try:
                    send.send_nowait(frame)
                except anyio.BrokenResourceError:  # the gateway hung up on that stream
                    self._listeners.remove(send)
