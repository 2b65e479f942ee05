"""The origin style: Flask + gunicorn sync workers + psycopg, one connection per worker."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue
from psycopg.rows import dict_row

from bench.baselines.schema import OWNER

COLUMNS = "id, title, description, priority, status, tags, created_at, updated_at, version"


def create_app() -> Flask:
    """The origin-style app; each gunicorn worker opens its connection on first use."""
    app = Flask(__name__)
    url = os.environ["BENCH_DATABASE_URL"]
    held: dict[str, psycopg.Connection[dict[str, Any]]] = {}

    def connection() -> psycopg.Connection[dict[str, Any]]:
        if "conn" not in held:
            held["conn"] = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        return held["conn"]

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return {"status": "ok"}

    @app.get("/items/<int:item_id>")
    def read_item(item_id: int) -> ResponseReturnValue:
        row = (
            connection()
            .execute(
                f"SELECT {COLUMNS} FROM origin_items WHERE id = %s AND owner_id = %s",
                (item_id, OWNER),
            )
            .fetchone()
        )
        if row is None:
            abort(404)
        return jsonify(row)

    @app.post("/items")
    def create_item() -> ResponseReturnValue:
        body = request.get_json()
        row = (
            connection()
            .execute(
                "INSERT INTO origin_items (owner_id, title, description, priority) "
                f"VALUES (%s, %s, %s, %s) RETURNING {COLUMNS}",
                (OWNER, body["title"], body.get("description", ""), body.get("priority", 3)),
            )
            .fetchone()
        )
        return jsonify(row), 201

    return app
