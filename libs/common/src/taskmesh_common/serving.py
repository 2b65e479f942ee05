"""The HTTP server of every FastAPI service: uvicorn with a graceful drain and problem+json 400s.

A library, not a program: each service's ``__main__`` calls `main` with its app factory, so
``python -m taskmesh_tasks --port 8003`` serves the tasks service.

On SIGTERM the server first stops listening (new connections are refused, so the gateway fails over
before it sends anything), then keeps the open connections for up to ``TASKMESH_DRAIN_SECONDS``,
answering every request on them with ``Connection: close``, and only then runs uvicorn's own
shutdown. The drain has to outlast the idle timeout of every client pool (the gateway's upstream
``keepalive_timeout`` is 4 s, httpx's default 5 s): a pooled connection is closed by its client or
after its next answer, never by the server while a request may be on its way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from typing import cast

import h11
import orjson
import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn._types import (
    ASGI3Application,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors import ChangeReload

from taskmesh_common.problems import PROBLEM_CONTENT_TYPE, problem_body

# uvicorn's own logger: its shutdown messages and these go to the same place.
logger = logging.getLogger("uvicorn.error")

_CLOSE = (b"connection", b"close")
# What a request uvicorn's parser refuses gets: the shape of every other error, no parser internals.
_UNPARSABLE = orjson.dumps(problem_body(400, detail="The request is not valid HTTP/1.1."))
_UNPARSABLE_HEADERS = [
    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
    (b"content-length", str(len(_UNPARSABLE)).encode()),
    _CLOSE,
]


class ServingSettings(BaseSettings):
    """How a service's HTTP server stops (environment only)."""

    model_config = SettingsConfigDict(env_prefix="TASKMESH_", extra="ignore", frozen=True)

    drain_seconds: float = Field(
        default=10.0,
        ge=0,
        description="longest wait for open connections after SIGTERM (> client idle timeouts)",
    )


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing unparsable requests with a problem+json 400."""

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser refused, then close (uvicorn sends text/plain here)."""
        del msg  # the parser's reason stays in the log, not in the answer
        content = [STATUS_LINE[400]]
        for name, value in [*self.server_state.default_headers, *_UNPARSABLE_HEADERS]:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"\r\n", _UNPARSABLE])
        self.transport.write(b"".join(content))
        self.transport.close()


class ProblemH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, refusing unparsable requests with a problem+json 400."""

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser refused, then close (uvicorn sends text/plain here)."""
        del msg
        response = h11.Response(status_code=400, headers=_UNPARSABLE_HEADERS, reason=b"Bad Request")
        for event in (response, h11.Data(data=_UNPARSABLE), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


class _CloseWhileDraining:
    """ASGI wrapper: once `draining` is set, every response says ``Connection: close``."""

    def __init__(self, app: ASGI3Application) -> None:
        self.app = app
        self.draining = False

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if not self.draining or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, _CLOSE]}
            await send(message)

        await self.app(scope, receive, send_closing)


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains its open connections before it shuts down."""

    def __init__(self, config: uvicorn.Config, *, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._gate: _CloseWhileDraining | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Load the app behind the drain gate, then serve as uvicorn does."""
        if not self.config.loaded:
            self.config.load()
        # uvicorn's load() leaves an ASGI3 callable (it wraps ASGI2 apps itself).
        self._gate = _CloseWhileDraining(cast(ASGI3Application, self.config.loaded_app))
        self.config.loaded_app = self._gate
        await super().serve(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's signal capture; log handlers are flushed before it re-raises the signal."""
        with super().capture_signals():
            try:
                yield
            finally:
                # The re-raised SIGTERM ends the process without atexit hooks: flush buffered logs.
                _flush_log_handlers()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening, drain, then uvicorn's shutdown (open requests, lifespan)."""
        await self._drain()
        await super().shutdown(sockets=sockets)

    async def _drain(self) -> None:
        if self._gate is not None:
            self._gate.draining = True
        loop = asyncio.get_running_loop()
        for connection in self._stop_listening():
            # Accepted by the kernel before the listener closed: serve it like the others.
            await loop.connect_accepted_socket(self._protocol, connection)
        deadline = loop.time() + self.drain_seconds
        logger.info(
            "draining %d connection(s) for at most %g s",
            len(self.server_state.connections),
            self.drain_seconds,
        )
        # Polled, as uvicorn's own shutdown does: a protocol signals nothing when it closes.
        while self.server_state.connections and not self.force_exit and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if left := len(self.server_state.connections):
            logger.warning("drain ended with %d connection(s) still open", left)

    def _stop_listening(self) -> list[socket.socket]:
        """Close every listening socket; return the connections still waiting in its backlog.

        uvicorn's `server.close()` alone would reset those queued connections, whose requests a
        client may already have sent. A duplicate descriptor keeps the socket listening while the
        event loop lets go of it, so its backlog can be emptied right before the final close.
        """
        listeners = [
            socket.socket(fileno=os.dup(sock.fileno()))
            for server in self.servers
            for sock in server.sockets
        ]
        for server in self.servers:
            server.close()
        waiting = []
        for listener in listeners:
            listener.setblocking(False)
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                connection.setblocking(False)
                waiting.append(connection)
            listener.close()
        return waiting

    def _protocol(self) -> asyncio.Protocol:
        """A protocol instance as uvicorn's startup creates one for each connection."""
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )


def _flush_log_handlers() -> None:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for each in loggers:
        if isinstance(each, logging.Logger):
            for handler in each.handlers:
                handler.flush()


PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": ProblemHttpToolsProtocol,
    "h11": ProblemH11Protocol,
}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the app with uvicorn, a graceful drain and problem+json 400s.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--http", choices=sorted(PROTOCOLS), default="httptools")
    parser.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--forwarded-allow-ips", default=None)
    parser.add_argument("--no-server-header", action="store_true")
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=int,
        default=None,
        help="seconds uvicorn waits for running requests after the drain",
    )
    parser.add_argument("--reload", action="store_true", help="development: restart on changes")
    parser.add_argument("--reload-dir", action="append", default=None, dest="reload_dirs")
    return parser


def main(app: str, argv: Sequence[str] | None = None, *, factory: bool = True) -> None:
    """Serve `app` (an import string of a factory, unless told otherwise) until SIGTERM/SIGINT."""
    # A service's __main__ calls this, so its help names the package: `python -m taskmesh_tasks`.
    package = app.split(":")[0].split(".")[0]
    args = _parser(f"python -m {package}").parse_args(argv)
    config = uvicorn.Config(
        app,
        factory=factory,
        host=args.host,
        port=args.port,
        http=PROTOCOLS[args.http],
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        server_header=not args.no_server_header,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        reload=args.reload,
        reload_dirs=args.reload_dirs,
    )
    if config.workers > 1:
        # uvicorn's worker supervisor holds the listener itself, so a worker could not refuse
        # new connections while it drains; one process per replica it is.
        raise SystemExit("one worker per process (unset WEB_CONCURRENCY): scale with replicas")
    server = DrainingServer(config, drain_seconds=ServingSettings().drain_seconds)
    if config.should_reload:
        ChangeReload(config, target=server.run, sockets=[config.bind_socket()]).run()
        return
    server.run()
    if not server.started:
        raise SystemExit(uvicorn.config.STARTUP_FAILURE)
