"""Redis Streams plumbing shared by the worker, the API and the dead-letter CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from taskmesh_common.events import EVENT_FIELD

COUNTERS_KEY = "taskmesh:activity:counters"
"""Hash of the workers' cumulative counters (processed, duplicates, failures, ...)."""
ERRORS_KEY = "taskmesh:activity:errors"
"""Hash of stream id -> last processing error, kept until the message is acked or dead."""
DEAD_PREFIX = b"dl:"
"""Dead-letter metadata fields carry this prefix; the original fields are kept verbatim."""

Fields = dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Message:
    """A stream entry delivered to this consumer, with how often it has been delivered."""

    id: str
    fields: Fields
    deliveries: int

    @property
    def raw_event(self) -> bytes | None:
        """The encoded event, if the entry has one."""
        return self.fields.get(EVENT_FIELD.encode())


@dataclass(frozen=True, slots=True)
class GroupState:
    """Where the consumer group stands: undelivered (`lag`) and unacknowledged (`pending`)."""

    lag: int | None
    pending: int
    consumers: int


def text(value: bytes | str) -> str:
    """A Redis reply value as text (ids and names are ASCII; event bodies may be anything)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) unless it exists; new groups start at 0."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def group_state(redis: Redis, stream: str, group: str) -> GroupState | None:
    """The group's lag and pending count, or None when the stream or group does not exist."""
    if not await redis.exists(stream):
        return None
    for info in await redis.xinfo_groups(stream):
        if text(info["name"]) == group:
            lag = info.get("lag")
            return GroupState(
                lag=int(lag) if lag is not None else None,
                pending=int(info["pending"]),
                consumers=int(info["consumers"]),
            )
    return None


async def counters(redis: Redis) -> dict[str, int]:
    """The workers' cumulative counters."""
    raw = await redis.hgetall(COUNTERS_KEY)
    return {text(name): int(value) for name, value in raw.items()}


async def move_to_dead_letters(
    redis: Redis,
    *,
    stream: str,
    group: str,
    dead_stream: str,
    maxlen: int,
    message: Message,
    reason: str,
    error: str,
    consumer: str,
) -> None:
    """Copy the entry to the dead-letter stream with why it died, and ack it, atomically."""
    fields: dict[bytes, bytes | str] = {
        name: value for name, value in message.fields.items() if not name.startswith(DEAD_PREFIX)
    }
    fields.update(
        {
            b"dl:source_id": message.id,
            b"dl:reason": reason,
            b"dl:error": error[:4000],
            b"dl:deliveries": str(message.deliveries),
            b"dl:consumer": consumer,
            b"dl:at": datetime.now(UTC).isoformat(),
        }
    )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(dead_stream, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.xack(stream, group, message.id)
        pipe.hdel(ERRORS_KEY, message.id)
        pipe.hincrby(COUNTERS_KEY, "dead_letters", 1)
        await pipe.execute()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry of the dead-letter stream."""

    id: str
    fields: Fields

    def meta(self, name: str) -> str:
        """A dead-letter metadata field (`source_id`, `reason`, `error`, `deliveries`, `at`)."""
        return text(self.fields.get(DEAD_PREFIX + name.encode(), b""))

    @property
    def original(self) -> Fields:
        """The fields of the entry as it was in the source stream."""
        return {k: v for k, v in self.fields.items() if not k.startswith(DEAD_PREFIX)}


def _dead_letters(entries: Any) -> list[DeadLetter]:
    return [DeadLetter(id=text(entry_id), fields=fields) for entry_id, fields in entries or []]


async def list_dead_letters(
    redis: Redis, dead_stream: str, *, count: int = 50, after: str = "-"
) -> list[DeadLetter]:
    """Dead letters oldest first, starting after `after` (exclusive) when given."""
    start = after if after == "-" else f"({after}"
    return _dead_letters(await redis.xrange(dead_stream, min=start, max="+", count=count))


async def get_dead_letter(redis: Redis, dead_stream: str, entry_id: str) -> DeadLetter | None:
    """One dead letter by its id."""
    found = _dead_letters(await redis.xrange(dead_stream, min=entry_id, max=entry_id, count=1))
    return found[0] if found else None


async def replay_dead_letter(
    redis: Redis, *, stream: str, dead_stream: str, letter: DeadLetter
) -> str:
    """Put the original entry back on the source stream and drop the dead letter; the new id."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(stream, letter.original)  # type: ignore[arg-type]
        pipe.xdel(dead_stream, letter.id)
        new_id, _ = await pipe.execute()
    return text(new_id)
