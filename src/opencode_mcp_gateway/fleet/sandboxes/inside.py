"""What runs inside a local sandbox, as its first process (stdlib only: run by path with the
system's Python, `python -I -S inside.py`, so nothing of the gateway's environment loads).

The sandbox has a network namespace of its own (only its loopback), so nothing in it can
reach the gateway, another sandbox or the host. Two byte relays cross its edge through
Unix sockets the runtime bind-mounts, nothing more (no HTTP is parsed here):

* out: the gateway connects to `<out socket>` and reaches OpenCode on 127.0.0.1:<port>;
* in: OpenCode (its provider URL is 127.0.0.1:<llm port>) reaches the gateway's LLM proxy
  through `<llm socket>`.

It starts `opencode serve` with the environment it was given and ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be sending


def _relay(connect: Callable[[], Awaitable[Streams]]) -> Callable[..., Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            other_reader, other_writer = await connect()
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, other_writer), _pump(other_reader, writer))
        finally:
            for w in (writer, other_writer):
                w.close()

    return handle


async def main(opencode: str, port: int, out_socket: str, llm_socket: str, llm_port: int) -> int:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out_socket)  # left by the previous run of this sandbox
    await asyncio.start_server(_relay(lambda: asyncio.open_unix_connection(llm_socket)), "127.0.0.1", llm_port)
    process = await asyncio.create_subprocess_exec(opencode, "serve", "--hostname", "127.0.0.1", "--port", str(port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, process.terminate)
    await asyncio.start_unix_server(_relay(lambda: asyncio.open_connection("127.0.0.1", port)), path=out_socket)
    return await process.wait()


if __name__ == "__main__":
    binary, port, out, llm, llm_port = sys.argv[1:6]
    sys.exit(asyncio.run(main(binary, int(port), out, llm, int(llm_port))))
