"""A tiny HTTP/1.1 upstream for gateway tests: echoes each request, tagged with its replica name.

Run as `python standin_upstream.py PORT NAME`. Paths with special behaviour:
`/v1/fail-on/NAME` answers 503 on replica NAME (200 elsewhere), `/v1/big`, `/big` and `/static/big`
answer a large JSON body,
`/v1/own-headers` sets its own security headers and request id, `/v1/slow` answers after 1.5 s,
`/v1/hang` and `/hang` after 3 s (longer than the tests' upstream timeout).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    """Answers every method with a JSON echo of the request."""

    protocol_version = "HTTP/1.1"
    replica = "?"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        status = 200
        headers = {"Content-Type": "application/json"}
        payload: dict[str, object] = {
            "replica": self.replica,
            "method": self.command,
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body_bytes": len(received),
        }
        if self.path == f"/v1/fail-on/{self.replica}":
            status = 503
        elif self.path == "/v1/slow":
            time.sleep(1.5)
        elif self.path in {"/v1/hang", "/hang"}:
            time.sleep(3)
        elif self.path in {"/v1/big", "/static/big", "/big"}:
            payload["filler"] = "taskmesh " * 2000
        elif self.path == "/v1/own-headers":
            headers |= {
                "Content-Security-Policy": "default-src 'none'",
                "X-Frame-Options": "SAMEORIGIN",
                "X-Request-ID": "upstream-made-this-up",
            }
        body = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 - the base class's names

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the gateway's access log is what the tests read."""


def main() -> None:
    """Serve on 127.0.0.1:PORT as replica NAME until killed."""
    port, name = int(sys.argv[1]), sys.argv[2]
    Echo.replica = name
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()


if __name__ == "__main__":
    main()
