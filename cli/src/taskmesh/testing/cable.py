"""A TCP forwarder in front of a server (PostgreSQL) that a test can unplug: an outage on demand.

The shared PostgreSQL cannot be stopped for one test; unplugging the cable cuts every connection
through it and refuses new ones, which is what a service sees when its database goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class Cable:
    """Forwards 127.0.0.1:`port` to the server of `url`, until unplugged."""

    def __init__(self, url: str) -> None:
        self.target_url = url
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.url = url

    async def plug(self) -> str:
        """Start forwarding; returns `url` rewritten to go through the cable."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        parts = urlsplit(self.target_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        self.url = parts._replace(netloc=netloc).geturl()
        return self.url

    async def unplug(self) -> None:
        """Cut every connection and refuse new ones (nothing listens on the port any more)."""
        if self.server is None:
            return
        server, self.server = self.server, None
        server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def cable_to(url: str) -> AsyncIterator[Cable]:
    """A plugged cable to the server of `url` (use `cable.url`), unplugged on exit."""
    cable = Cable(url)
    await cable.plug()
    try:
        yield cable
    finally:
        await cable.unplug()
