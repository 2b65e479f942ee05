"""A tiny HTTP service for runner tests: readiness, its environment, and its database."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/readyz":
            body: object = {"status": "ok"}
        elif self.path == "/env":
            body = {k: v for k, v in os.environ.items() if k.startswith(("FAKE_", "TASKMESH_"))}
        elif self.path == "/runs":
            with psycopg.connect(os.environ["FAKE_DATABASE_URL"]) as conn:
                row = conn.execute("SELECT count(*) FROM runs").fetchone()
            body = {"runs": row[0] if row else 0}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


print(f"listening on {sys.argv[1]}", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
