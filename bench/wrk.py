"""wrk runs: a Lua script per scenario, results read back as JSON from wrk's `done` hook."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Shared by every script: count non-2xx answers per thread, print one JSON line at the end.
_PRELUDE = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
non2xx = 0
local function count(status)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("non2xx") or 0) end
  local e = summary.errors
  io.write("WRKJSON ", string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%f}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def lua_string(value: str) -> str:
    """A Lua string literal."""
    return json.dumps(value)  # JSON string escapes are valid Lua escapes for our ASCII payloads


def lua_headers(headers: dict[str, str]) -> str:
    """A Lua table constructor for `headers`."""
    return "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()) + "}"


def lua_list(values: Sequence[object]) -> str:
    """A Lua array constructor of numbers or strings."""
    items = (lua_string(v) if isinstance(v, str) else str(v) for v in values)
    return "{" + ", ".join(items) + "}"


def script_cycle_get(paths: Sequence[str], headers: dict[str, str]) -> str:
    """GET each of `paths` in turn."""
    return f"""
local paths = {lua_list(paths)}
local headers = {lua_headers(headers)}
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
function response(status, hdrs, body) count(status) end
"""


def script_create(
    path: str,
    headers: dict[str, str],
    body: str,
    idempotency: bool,
    authorizations: Sequence[str] = (),
) -> str:
    """POST `body` to `path`; a fresh Idempotency-Key per request when `idempotency`.

    With `authorizations`, each request carries the next of these Authorization values in turn.
    """
    return f"""
local headers = {lua_headers(headers)}
local body = {lua_string(body)}
local idempotency = {"true" if idempotency else "false"}
local authorizations = {lua_list(list(authorizations))}
local prefix = ""
local i = 0
function init(args)
  math.randomseed(os.time() + (id or 0))
  prefix = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end
function request()
  i = i + 1
  if idempotency then headers["Idempotency-Key"] = prefix .. "-" .. i end
  if #authorizations > 0 then
    headers["Authorization"] = authorizations[(i % #authorizations) + 1]
  end
  return wrk.format("POST", {lua_string(path)}, headers, body)
end
function response(status, hdrs, body) count(status) end
"""


def script_update(
    path_prefix: str, versions: dict[int, int], headers: dict[str, str], body: str
) -> str:
    """PATCH tasks in turn with If-Match, learning each task's new version from the response."""
    numbers = sorted(versions)
    table = "{" + ", ".join(f"[{n}] = {v}" for n, v in versions.items()) + "}"
    return f"""
local numbers = {lua_list(numbers)}
local versions = {table}
local headers = {lua_headers(headers)}
local body = {lua_string(body)}
local i = 0
function init(args)
  -- each thread owns its own slice of the tasks, so no two threads race on one version
  local n = nthreads or 1
  local mine = {{}}
  for k, v in ipairs(numbers) do if (k - 1) % n == (id or 1) - 1 then table.insert(mine, v) end end
  numbers = mine
end
function request()
  i = i + 1
  local number = numbers[(i % #numbers) + 1]
  headers["If-Match"] = '"' .. versions[number] .. '"'
  return wrk.format("PATCH", {lua_string(path_prefix)} .. number, headers, body)
end
function response(status, hdrs, body)
  count(status)
  local number = tonumber(string.match(body, '"number":%s*(%d+)'))
  local version = tonumber(string.match(body, '"version":%s*(%d+)'))
  if number and version and versions[number] and version > versions[number] then
    versions[number] = version
  end
end
"""


def script_mixed(
    get_paths: Sequence[str],
    list_path: str,
    create_path: str,
    headers: dict[str, str],
    body: str,
) -> str:
    """80% reads (6 gets, 2 list pages) and 20% creates with Idempotency-Key, interleaved."""
    return f"""
local paths = {lua_list(get_paths)}
local headers = {lua_headers(headers)}
local post_headers = {lua_headers(headers | {"Content-Type": "application/json"})}
local body = {lua_string(body)}
local prefix = ""
local i = 0
function init(args)
  math.randomseed(os.time() + (id or 0))
  prefix = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end
function request()
  i = i + 1
  local slot = i % 10
  if slot == 3 or slot == 8 then
    post_headers["Idempotency-Key"] = prefix .. "-" .. i
    return wrk.format("POST", {lua_string(create_path)}, post_headers, body)
  elseif slot == 5 or slot == 0 then
    return wrk.format("GET", {lua_string(list_path)}, headers)
  end
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
function response(status, hdrs, body) count(status) end
"""


def script_rate(
    path: str, headers: dict[str, str], body: str, delay_ms: float, idempotency: bool = True
) -> str:
    """Creates paced by wrk's `delay` hook: each connection waits `delay_ms` between requests."""
    return (
        script_create(path, headers, body, idempotency)
        + f"""
function delay() return {delay_ms} end
"""
    )


@dataclass
class WrkResult:
    """One wrk run."""

    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    raw: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        """Non-2xx answers plus socket errors."""
        return self.non2xx + self.socket_errors


def run_wrk(
    url: str,
    script: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    timeout: float = 5,
) -> WrkResult:
    """Run wrk against `url` (scheme+host; the script picks paths) and parse its JSON summary."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}/"
    full = f"nthreads = {threads}\n" + _PRELUDE + script
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(full)
        path = Path(handle.name)
    try:
        command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s"]
        command += ["--timeout", f"{timeout:g}s", "-s", str(path), base]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    finally:
        path.unlink(missing_ok=True)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line.removeprefix("WRKJSON "))
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                non2xx=int(data["non2xx"]),
                socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                mean_ms=data["mean_us"] / 1000,
                raw=data,
            )
    raise RuntimeError(
        f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}"
    )
