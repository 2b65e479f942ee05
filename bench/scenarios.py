"""The scenarios: baselines, and each system scenario direct and through the gateway."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

from bench import client, procs, wrk
from bench.baselines import Baseline
from bench.runner import Scenario
from bench.target import Target

JSON = {"Content-Type": "application/json"}
CREATE_BODY = json.dumps({"title": "bench create", "description": "made by wrk", "priority": 2})
UPDATE_BODY = json.dumps({"description": "updated by wrk"})
LIST_QUERY = "status=todo&limit=50"
SEARCH_QUERY = "q=bravo&limit=50"
GET_SPREAD = 1000  # get-one cycles over this many task numbers / row ids


def baseline_scenarios(
    apps: dict[str, Baseline], database: Callable[[], set[int]]
) -> list[Scenario]:
    """The four baselines' scenarios."""

    def pids(app: Baseline) -> Callable[[], set[int]]:
        return lambda: procs.tree({app.pid})

    ids = [f"/items/{i}" for i in range(1, GET_SPREAD + 1)]
    items: list[Scenario] = [
        Scenario(
            "baseline.ceiling.static",
            apps["nginx-static"].url,
            lambda: wrk.script_cycle_get(["/task.json"], {}),
            pids(apps["nginx-static"]),
            database,
            "baseline",
        )
    ]
    for name in ("floor", "peer", "origin"):
        app = apps[name]
        items.append(
            Scenario(
                f"baseline.{name}.get",
                app.url,
                lambda: wrk.script_cycle_get(ids, {}),
                pids(app),
                database,
                "baseline",
            )
        )
        items.append(
            Scenario(
                f"baseline.{name}.create",
                app.url,
                lambda: wrk.script_create("/items", JSON, CREATE_BODY, idempotency=False),
                pids(app),
                database,
                "baseline",
            )
        )
    peer = apps["peer"]
    items += [
        Scenario(
            "baseline.peer.list",
            peer.url,
            lambda: wrk.script_cycle_get([f"/items?{LIST_QUERY}"], {}),
            pids(peer),
            database,
            "baseline",
        ),
        Scenario(
            "baseline.peer.search",
            peer.url,
            lambda: wrk.script_cycle_get([f"/search?{SEARCH_QUERY}"], {}),
            pids(peer),
            database,
            "baseline",
        ),
    ]
    return items


@dataclass(frozen=True)
class TasksScripts:
    """The Lua scripts of the tasks scenarios under one path prefix ("" or the gateway's)."""

    target: Target
    user: client.User
    prefix: str
    others: tuple[client.User, ...] = ()  # more writers, for creates spread over users

    @property
    def base(self) -> str:
        """The collection path."""
        return f"{self.prefix}/v1/tasks"

    def gets(self) -> list[str]:
        """Paths of the tasks get-one cycles over."""
        return [f"{self.base}/{n}" for n in range(1, GET_SPREAD + 1)]

    def get(self) -> str:
        """Get one task (cycling over the seeded ones)."""
        return wrk.script_cycle_get(self.gets(), self.user.bearer())

    def list(self) -> str:
        """A filtered page of 50."""
        return wrk.script_cycle_get([f"{self.base}?{LIST_QUERY}"], self.user.bearer())

    def search(self) -> str:
        """A full-text search page."""
        return wrk.script_cycle_get([f"{self.base}?{SEARCH_QUERY}"], self.user.bearer())

    def create(self) -> str:
        """Creates, each with its own Idempotency-Key, by the user and the others in turn."""
        headers = self.user.bearer() | JSON
        tokens = [user.bearer()["Authorization"] for user in (self.user, *self.others)]
        return wrk.script_create(
            self.base,
            headers,
            CREATE_BODY,
            idempotency=True,
            authorizations=tokens if self.others else (),
        )

    def create_one_user(self) -> str:
        """Creates, each with its own Idempotency-Key, all by one user."""
        headers = self.user.bearer() | JSON
        return wrk.script_create(self.base, headers, CREATE_BODY, idempotency=True)

    def update(self) -> str:
        """PATCH with If-Match, starting from the versions the tasks have now."""
        versions = client.task_versions(self.target.urls["tasks"], self.user, GET_SPREAD)
        headers = self.user.bearer() | JSON
        return wrk.script_update(self.base + "/", versions, headers, UPDATE_BODY)

    def mixed(self) -> str:
        """80% reads, 20% creates."""
        list_path = f"{self.base}?{LIST_QUERY}"
        return wrk.script_mixed(self.gets(), list_path, self.base, self.user.bearer(), CREATE_BODY)

    def board(self) -> str:
        """The web board with the user's session cookie."""
        return wrk.script_cycle_get(["/"], {"Cookie": self.user.cookie})


def system_scenarios(
    target: Target,
    reader: client.User,
    writer: client.User,
    *,
    web: bool = True,
    writers: tuple[client.User, ...] = (),
) -> list[Scenario]:
    """Every system scenario, direct to its service and through the gateway.

    Reads use `reader`, whose 1,000 tasks never change; writes use `writer`, so the tasks the
    create runs pile up never slow the reads down (a newest-first search would walk them all).
    `create` spreads its requests over `writer` and `writers`, as a system with many users sees
    them: one user's creates take turns on that user's task-number counter (a row lock held
    until the commit is on disk), which `create_one_user` measures.
    """
    database = target.postgres_pids
    items: list[Scenario] = []
    routes = {"direct": ("", "tasks"), "gateway": ("/api/tasks", "gateway")}
    for group, (prefix, url_name) in routes.items():
        reads = TasksScripts(target, reader, prefix)
        writes = TasksScripts(target, writer, prefix, writers)
        services = ["tasks", "gateway"] if group == "gateway" else ["tasks"]
        servers = functools.partial(_pids, target, services)
        scripts = {
            "get": reads.get,
            "list": reads.list,
            "search": reads.search,
            "create": writes.create,
            "create_one_user": writes.create_one_user,
            "update": writes.update,
            "mixed": writes.mixed,
        }
        for op, script in scripts.items():
            url = target.urls[url_name]
            items.append(Scenario(f"tasks.{op}.{group}", url, script, servers, database, group))
    if web:
        for group, url_name in (("direct", "web"), ("gateway", "gateway")):
            services = ["web", "tasks", "gateway"] if group == "gateway" else ["web", "tasks"]
            items.append(
                Scenario(
                    f"web.board.{group}",
                    target.urls[url_name],
                    TasksScripts(target, reader, "").board,
                    functools.partial(_pids, target, services),
                    database,
                    group,
                )
            )
    return items


def _pids(target: Target, services: list[str]) -> set[int]:
    found: set[int] = set()
    for name in services:
        found |= target.service_pids(name)
    return found
