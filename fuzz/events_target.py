"""Fuzz the event parser: any bytes are an event or an `EventError`, nothing else."""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports():
    from taskmesh_common.events import EventError, parse_event

SEED = (
    b'{"id":"0b6f1e49-8a51-4a4c-b0f4-7a3f3f0e8d11","type":"task.created","schema_version":"1.0",'
    b'"occurred_at":"2026-11-23T10:00:00Z","owner_id":"6f1c2a7e-3f55-4d0b-9d5e-0a4c1a2b3c4d",'
    b'"actor":"u","task":{"id":"0b6f1e49-8a51-4a4c-b0f4-7a3f3f0e8d12","number":1,'
    b'"owner_id":"6f1c2a7e-3f55-4d0b-9d5e-0a4c1a2b3c4d","title":"t","priority":3,'
    b'"status":"todo","version":1}}'
)


def check(data: bytes) -> None:
    """Parse `data` as a stream entry, raw and spliced into a valid event."""
    fdp = atheris.FuzzedDataProvider(data)
    cut = fdp.ConsumeIntInRange(0, len(SEED))
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    for raw in (rest, SEED[:cut] + rest + SEED[cut:], rest.decode("utf-8", "replace")):
        with contextlib.suppress(EventError):
            parse_event(raw)
