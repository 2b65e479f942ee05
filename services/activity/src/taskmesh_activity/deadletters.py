"""Dead-letter CLI: `python -m taskmesh_activity.deadletters list | show ID | replay ID|--all`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import orjson
from redis.asyncio import Redis

from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.streams import DeadLetter


def _event_summary(letter: DeadLetter) -> tuple[str, str]:
    try:
        event = orjson.loads(letter.original.get(b"event", b""))
    except orjson.JSONDecodeError:
        return "-", "-"
    if not isinstance(event, dict):
        return "-", "-"
    return str(event.get("type", "-")), str(event.get("id", "-"))


def _detail(letter: DeadLetter) -> dict[str, Any]:
    raw = letter.original.get(b"event", b"")
    try:
        event: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        event = streams.text(raw)
    return {
        "id": letter.id,
        "source_id": letter.meta("source_id"),
        "reason": letter.meta("reason"),
        "error": letter.meta("error"),
        "deliveries": letter.meta("deliveries"),
        "consumer": letter.meta("consumer"),
        "dead_at": letter.meta("at"),
        "event": event,
        "fields": {
            streams.text(k): streams.text(v) for k, v in letter.original.items() if k != b"event"
        },
    }


async def _list(redis: Redis, settings: ActivitySettings, count: int, out: TextIO) -> int:
    letters = await streams.list_dead_letters(redis, settings.dead_letter_stream, count=count)
    for letter in letters:
        kind, event_id = _event_summary(letter)
        error = letter.meta("error").replace("\n", " ")
        reason = letter.meta("reason")
        out.write(
            f"{letter.id}\t{letter.meta('at')}\t{reason}\t{kind}\t{event_id}\t{error[:100]}\n"
        )
    total = await redis.xlen(settings.dead_letter_stream)
    out.write(f"{len(letters)} shown, {total} dead letters in {settings.dead_letter_stream}\n")
    return 0


async def _show(redis: Redis, settings: ActivitySettings, entry_id: str, out: TextIO) -> int:
    letter = await streams.get_dead_letter(redis, settings.dead_letter_stream, entry_id)
    if letter is None:
        sys.stderr.write(f"no dead letter {entry_id}\n")
        return 2
    out.write(orjson.dumps(_detail(letter), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


async def _replay(
    redis: Redis, settings: ActivitySettings, entry_id: str | None, out: TextIO
) -> int:
    dead = settings.dead_letter_stream
    if entry_id is not None:
        letter = await streams.get_dead_letter(redis, dead, entry_id)
        if letter is None:
            sys.stderr.write(f"no dead letter {entry_id}\n")
            return 2
        letters = [letter]
    else:
        # Only what is dead now: an event that dies again is not replayed twice in one run.
        newest: Any = await redis.xrevrange(dead, count=1)
        if not newest:
            out.write("no dead letters\n")
            return 0
        last = streams.text(newest[0][0])
        letters, after = [], "-"
        while batch := await streams.list_dead_letters(redis, dead, count=100, after=after):
            letters.extend(b for b in batch if _stream_id_le(b.id, last))
            after = batch[-1].id
            if not _stream_id_le(after, last):
                break
    for letter in letters:
        new_id = await streams.replay_dead_letter(
            redis, stream=settings.stream, dead_stream=dead, letter=letter
        )
        out.write(f"replayed {letter.id} as {new_id}\n")
    return 0


def _stream_id_le(a: str, b: str) -> bool:
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) <= (int(bms), int(bseq or 0))


async def run(argv: Sequence[str], settings: ActivitySettings, out: TextIO = sys.stdout) -> int:
    """Run one CLI command; the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m taskmesh_activity.deadletters",
        description="Inspect and replay task events that the activity worker gave up on.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--count", type=int, default=50)
    show = commands.add_parser("show", help="show one dead letter in full")
    show.add_argument("id")
    replay = commands.add_parser("replay", help="put dead letters back on the event stream")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?")
    which.add_argument("--all", action="store_true", help="replay every current dead letter")
    args = parser.parse_args(argv)

    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        if args.command == "list":
            return await _list(redis, settings, args.count, out)
        if args.command == "show":
            return await _show(redis, settings, args.id, out)
        return await _replay(redis, settings, None if args.all else args.id, out)
    finally:
        await redis.aclose()


def main() -> None:
    """Entry point of `python -m taskmesh_activity.deadletters`."""
    raise SystemExit(asyncio.run(run(sys.argv[1:], ActivitySettings())))


if __name__ == "__main__":
    main()
