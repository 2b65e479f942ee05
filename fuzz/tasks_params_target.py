"""Fuzz what the tasks and activity services parse from query strings and headers.

Cursors, `If-Match`/`If-None-Match`, ISO dates and request bodies must come out parsed or as
the refusal the routes turn into a 4xx (`InvalidCursorError`, pydantic's `ValidationError`).
"""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports():
    from pydantic import TypeAdapter, ValidationError
    from taskmesh_activity import service as activity
    from taskmesh_tasks.errors import InvalidCursorError
    from taskmesh_tasks.schemas import MAX_NUMBER, BulkStatus, IsoDate, TaskCreate, TaskPatch
    from taskmesh_tasks.service import (
        SORTS,
        decode_cursor,
        encode_cursor,
        if_match_versions,
        none_match,
    )

DATES: TypeAdapter[object] = TypeAdapter(IsoDate)
BODIES = (TaskCreate, TaskPatch, BulkStatus)


def check(data: bytes) -> None:
    """Feed one input to every parser; a valid cursor must also round-trip."""
    fdp = atheris.FuzzedDataProvider(data)
    sort = fdp.PickValueInList(list(SORTS))
    version = fdp.ConsumeIntInRange(1, 2**31 - 1)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300))
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        key, number = decode_cursor(text, sort)
    except InvalidCursorError:
        pass
    else:
        assert decode_cursor(encode_cursor(sort, key, number), sort) == (key, number)
    with contextlib.suppress(activity.InvalidCursorError):
        activity.decode_cursor(text)
    versions = if_match_versions(text)
    assert versions is None or all(0 <= v <= MAX_NUMBER for v in versions)
    none_match(text, version)
    with contextlib.suppress(ValidationError):
        DATES.validate_python(text)
    for model in BODIES:
        with contextlib.suppress(ValidationError):
            model.model_validate_json(body)
