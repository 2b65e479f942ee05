"""Load through the gateway: one user and one loopback source address per worker, every try timed.

The gateway limits request rates per client address, so each worker connects from its own
127.0.x.y address (all of 127/8 is loopback on Linux): the suites measure the services, not the
rate limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from reliability.harness import PASSWORD

TASKS = "/api/tasks/v1/tasks"
TOKEN_REFRESH_SECONDS = 480.0  # tokens live 600 s; refresh early, rarely (logins are CPU-heavy)
RETRYABLE = {409, 429, 500, 502, 503, 504}
# The gateway allows 50 requests/s per client address (burst 100): each worker stays below it.
WORKER_INTERVAL = 1 / 40


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP try: when (run seconds), its status (None: no response) and body kind."""

    started: float
    ended: float
    status: int | None
    problem: bool
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(slots=True)
class Outcome:
    """An operation and all its tries; `body` is a create's last response JSON, if it had one."""

    op: str
    key: str | None
    attempts: list[Attempt] = field(default_factory=list)
    body: Any = None

    @property
    def ok(self) -> bool:
        last = self.attempts[-1].status if self.attempts else None
        return last is not None and 200 <= last < 300

    @property
    def ended(self) -> float:
        return self.attempts[-1].ended


@dataclass
class Worker:
    """A client with its own source address and its own user."""

    client: httpx.AsyncClient
    email: str
    source: str
    token: str = ""
    issued: float = 0.0
    next_slot: float = 0.0
    renew_after: float = TOKEN_REFRESH_SECONDS
    signing_in: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def login(self) -> None:
        response = await self.client.post(
            "/api/auth/v1/sessions", json={"email": self.email, "password": PASSWORD}
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]
        self.issued = time.monotonic()

    def _stale(self) -> bool:
        return time.monotonic() - self.issued > self.renew_after

    async def headers(self) -> dict[str, str]:
        if self._stale():
            # One login per worker: every request in flight saw the same old token, and a
            # login each (argon2, 64 MiB) ran into the gateway's credentials limit as 429s.
            async with self.signing_in:
                if self._stale():
                    await self.login()
        return {"Authorization": f"Bearer {self.token}"}


class Load:
    """Workers and the clock every attempt is measured against."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.t0 = time.monotonic()
        self.outcomes: list[Outcome] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def _try(
        self, worker: Worker, method: str, path: str, **kwargs: Any
    ) -> tuple[Attempt, Any]:
        wait = worker.next_slot - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        worker.next_slot = max(time.monotonic(), worker.next_slot) + WORKER_INTERVAL
        began = self.now()
        try:
            headers = kwargs.pop("headers", {}) | await worker.headers()
            response = await worker.client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            return Attempt(began, self.now(), None, False, type(error).__name__), None
        kind = response.headers.get("content-type", "")
        body = None
        with contextlib.suppress(ValueError):
            body = response.json()
        attempt = Attempt(began, self.now(), response.status_code, "problem+json" in kind)
        return attempt, body

    async def create(self, worker: Worker, key: str, *, retries: int = 0) -> Outcome:
        """Create a task titled after its Idempotency-Key; retry with the same key on failure."""
        outcome = Outcome("create", key)
        for attempt_number in range(retries + 1):
            attempt, body = await self._try(
                worker,
                "POST",
                TASKS,
                json={"title": f"rel {key}", "description": "reliability suite"},
                headers={"Idempotency-Key": key},
            )
            outcome.attempts.append(attempt)
            outcome.body = body
            if attempt.status is not None and attempt.status not in RETRYABLE:
                break
            if attempt_number < retries:
                await asyncio.sleep(0.2 * (attempt_number + 1))
        self.outcomes.append(outcome)
        return outcome

    async def read(self, worker: Worker) -> Outcome:
        """List the worker's newest tasks (one page)."""
        outcome = Outcome("read", None)
        # The page is not kept: tens of thousands of them made the client's own garbage
        # collection pause for hundreds of milliseconds late in a soak, measured as server p99.
        attempt, _ = await self._try(worker, "GET", TASKS, params={"limit": 20, "sort": "-created"})
        outcome.attempts.append(attempt)
        self.outcomes.append(outcome)
        return outcome


@contextlib.asynccontextmanager
async def workers(
    url: str, count: int, *, subnet: int, request_timeout: float = 30.0
) -> AsyncIterator[list[Worker]]:
    """`count` workers, each a fresh user signed up and signed in from 127.`subnet`.(n+1)."""
    async with contextlib.AsyncExitStack() as stack:
        made = []
        for index in range(count):
            source = f"127.{subnet}.{index // 250}.{index % 250 + 1}"
            transport = httpx.AsyncHTTPTransport(local_address=source)
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, transport=transport, timeout=request_timeout)
            )
            email = f"rel-{uuid.uuid4().hex[:12]}@example.com"
            # Staggered over the last quarter of the refresh time: not all logins in one second.
            renew_after = TOKEN_REFRESH_SECONDS * (1 - 0.25 * index / count)
            made.append(Worker(client, email, source, renew_after=renew_after))

        async def sign_up(worker: Worker) -> None:
            created = await worker.client.post(
                "/api/auth/v1/users",
                json={"email": worker.email, "display_name": "reliability", "password": PASSWORD},
            )
            created.raise_for_status()
            await worker.login()

        for start in range(0, count, 4):  # password hashing is CPU-heavy: a few at a time
            await asyncio.gather(*(sign_up(w) for w in made[start : start + 4]))
        yield made


async def closed_loop(
    load: Load,
    operation: Callable[[Worker, int], Awaitable[Outcome]],
    *,
    total: int | None = None,
    until: float | None = None,
    done: Callable[[], bool] | None = None,
) -> None:
    """Workers run operations back to back until `total` are issued, time `until` or `done`."""
    issued = 0

    def going() -> bool:
        if total is not None and issued >= total:
            return False
        return (until is None or load.now() < until) and (done is None or not done())

    async def run(worker: Worker) -> None:
        nonlocal issued
        while going():
            index = issued
            issued += 1
            await operation(worker, index)

    await asyncio.gather(*(run(worker) for worker in load.workers))


async def open_loop(
    load: Load,
    operation: Callable[[Worker, int], Coroutine[Any, Any, Outcome]],
    *,
    rate: float,
    until: float,
    max_in_flight: int = 256,
) -> int:
    """Start operations at a fixed `rate` per second until `until`, whatever the latency.

    Returns how many starts were skipped because `max_in_flight` were already running.
    """
    in_flight: set[asyncio.Task[Outcome]] = set()
    skipped = 0
    index = 0
    begin = load.now()
    while load.now() < until:
        due = begin + index / rate
        delay = due - load.now()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            skipped += 1
        else:
            worker = load.workers[index % len(load.workers)]
            task = asyncio.create_task(operation(worker, index))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        index += 1
    if in_flight:
        await asyncio.gather(*in_flight)
    return skipped


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def per_second(outcomes: list[Outcome], *, start: float, end: float) -> list[int]:
    """Successful operations completed in each whole second from `start` to `end`."""
    buckets = [0] * max(0, int(end - start))
    for outcome in outcomes:
        second = int(outcome.ended - start)
        if outcome.ok and 0 <= second < len(buckets):
            buckets[second] += 1
    return buckets
