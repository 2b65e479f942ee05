"""A stand-in migration: records one row per run, so tests can see data persist."""

from __future__ import annotations

import os

import psycopg

with psycopg.connect(os.environ["FAKE_DATABASE_URL"], autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS runs (at timestamptz DEFAULT now())")
    conn.execute("INSERT INTO runs DEFAULT VALUES")
print("migrated", flush=True)
