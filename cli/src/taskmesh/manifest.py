"""The ``[tool.taskmesh]`` manifests that tell `taskmesh up` how to run each service."""

from __future__ import annotations

import secrets
import string
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ManifestError(ValueError):
    """A manifest is malformed or refers to something that does not exist."""


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a service: its command, HTTP port and readiness path (if it serves HTTP)."""

    name: str
    command: tuple[str, ...]
    port: int | None = None
    ready: str | None = None


@dataclass(frozen=True)
class Service:
    """A service directory with a ``[tool.taskmesh]`` table."""

    name: str
    directory: Path
    order: int
    database: str | None
    migrate: tuple[str, ...] | None
    env: Mapping[str, str]
    processes: tuple[ProcessSpec, ...]


def discover_services(root: Path) -> list[Service]:
    """Every ``services/*`` of the workspace at `root` that has a manifest, in start order."""
    found = []
    for pyproject in sorted((root / "services").glob("*/pyproject.toml")):
        try:
            tool = tomllib.loads(pyproject.read_text()).get("tool", {})
        except tomllib.TOMLDecodeError as error:
            raise ManifestError(f"{pyproject}: {error}") from error
        if "taskmesh" in tool:
            found.append(_parse(pyproject.parent, tool["taskmesh"]))
    names = [process.name for service in found for process in service.processes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ManifestError(f"process names used twice: {', '.join(duplicates)}")
    return sorted(found, key=lambda service: (service.order, service.name))


def _parse(directory: Path, table: dict[str, Any]) -> Service:
    where = directory / "pyproject.toml"
    try:
        processes = tuple(
            ProcessSpec(
                name=str(entry["name"]),
                command=tuple(str(part) for part in entry["command"]),
                port=int(entry["port"]) if "port" in entry else None,
                ready=str(entry["ready"]) if "ready" in entry else None,
            )
            for entry in table.get("processes", [])
        )
        migrate = table.get("migrate")
        return Service(
            name=directory.name,
            directory=directory,
            order=int(table.get("order", 100)),
            database=str(table["database"]) if "database" in table else None,
            migrate=tuple(str(part) for part in migrate) if migrate else None,
            env={str(key): str(value) for key, value in table.get("env", {}).items()},
            processes=processes,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"{where}: invalid [tool.taskmesh]: {error!r}") from error


@dataclass
class Secrets(Mapping[str, str]):
    """Random secrets created on first use and kept in a file, so they survive restarts."""

    path: Path
    _values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                name, _, value = line.partition("=")
                if value:
                    self._values[name] = value

    def __getitem__(self, name: str) -> str:
        if name not in self._values:
            self._values[name] = secrets.token_urlsafe(48)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)
            text = "".join(f"{key}={value}\n" for key, value in self._values.items())
            self.path.write_text(text)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _Urls(dict[str, str]):
    def __missing__(self, name: str) -> str:
        raise ManifestError(f"no process named {name!r} (known: {', '.join(sorted(self))})")


@dataclass(frozen=True)
class Context:
    """The values placeholders in manifests stand for."""

    urls: Mapping[str, str]
    secrets: Mapping[str, str]
    databases: Mapping[str, str]
    redis_url: str
    public_url: str
    data_dir: Path


def render(template: str, context: Context, service: Service, *, port: int | None = None) -> str:
    """Fill `template`'s placeholders (``{port}``, ``{url[NAME]}``, ``{secret[NAME]}``, ...)."""
    values: dict[str, Any] = {
        "url": _Urls(context.urls),
        "secret": context.secrets,
        "redis_url": context.redis_url,
        "public_url": context.public_url,
        "data_dir": str(context.data_dir / "services" / service.name),
    }
    if service.database:
        values["database_url"] = context.databases[service.database]
    if port is not None:
        values["port"] = str(port)
    try:
        return string.Formatter().vformat(template, (), values)
    except KeyError as error:
        raise ManifestError(
            f"services/{service.name}: unknown placeholder {{{error.args[0]}}} in {template!r}"
        ) from error


def render_env(context: Context, service: Service, *, port: int | None = None) -> dict[str, str]:
    """The service's ``[tool.taskmesh.env]`` with placeholders filled."""
    env = {name: render(value, context, service, port=port) for name, value in service.env.items()}
    return {"TASKMESH_ENV": "development", **env}
