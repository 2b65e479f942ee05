"""Prometheus view of the event pipeline, read from Redis (the workers have no HTTP port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from taskmesh_activity import streams

logger = logging.getLogger("taskmesh.activity.metrics")

_COUNTERS = {
    "processed": ("activity_events_processed", "Events applied to the feed"),
    "duplicates": ("activity_events_duplicate", "Redelivered events that had no second effect"),
    "failures": ("activity_event_failures", "Failed attempts to apply an event"),
    "reclaimed": ("activity_events_reclaimed", "Events reclaimed from stalled consumers"),
    "dead_letters": ("activity_dead_letters", "Events moved to the dead-letter stream"),
}


class PipelineStats(Collector):
    """The last snapshot of the pipeline's counters and gauges, exported on /metrics."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        for key, (name, doc) in _COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=self.counters.get(key, 0))
        gauges = {
            "lag": ("activity_consumer_lag", "Stream entries not yet delivered to the group"),
            "pending": ("activity_consumer_pending", "Entries delivered but not yet acknowledged"),
            "dead": ("activity_dead_letter_backlog", "Entries waiting in the dead-letter stream"),
        }
        for key, (name, doc) in gauges.items():
            if key in self.gauges:
                yield GaugeMetricFamily(name, doc, value=self.gauges[key])

    async def refresh(self, redis: Redis, *, stream: str, group: str, dead_stream: str) -> None:
        """Read a fresh snapshot from Redis."""
        self.counters = await streams.counters(redis)
        state = await streams.group_state(redis, stream, group)
        gauges: dict[str, float] = {"dead": await redis.xlen(dead_stream)}
        if state is not None:
            gauges["pending"] = state.pending
            if state.lag is not None:
                gauges["lag"] = state.lag
        self.gauges = gauges

    async def refresh_until(
        self,
        stop: asyncio.Event,
        redis: Redis,
        *,
        stream: str,
        group: str,
        dead_stream: str,
        every: float,
    ) -> None:
        """Refresh every `every` seconds until `stop` is set; a Redis outage only skips one."""
        # A stop event, not task cancellation: redis-py can swallow a cancel that lands mid-reply.
        while not stop.is_set():
            try:
                await self.refresh(redis, stream=stream, group=group, dead_stream=dead_stream)
            except Exception:  # metrics must never take the API down
                logger.warning("could not refresh pipeline metrics")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


PIPELINE_STATS = PipelineStats()
REGISTRY.register(PIPELINE_STATS)
