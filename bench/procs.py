"""Server processes seen through /proc: who listens on a port, their CPU time and memory."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        path = PROC / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def all_pids() -> list[int]:
    """Every process id on the machine."""
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def listeners(port: int) -> set[int]:
    """Processes holding a listening socket on `port` (every worker sharing it, too)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found: set[int] = set()
    if not wanted:
        return found
    for pid in all_pids():
        try:
            for fd in (PROC / str(pid) / "fd").iterdir():
                if str(fd.readlink()) in wanted:
                    found.add(pid)
                    break
        except OSError:
            continue
    return found


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def parent(pid: int) -> int | None:
    """The parent of `pid`, or None when it is gone."""
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def tree(roots: Iterable[int]) -> set[int]:
    """`roots` and all their descendants alive now."""
    roots = set(roots)
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        ppid = parent(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process of `pids`."""
    found: dict[int, float] = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            found[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by the processes alive at the second."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` in bytes (0 when it is gone)."""
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of `pid` in bytes (shared pages split among their users)."""
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class RssSampler:
    """Samples, in a thread, each group's largest process RSS and summed PSS; keeps the peaks."""

    groups: dict[str, set[int]]
    interval: float = 0.2
    peaks: dict[str, int] = field(default_factory=dict)  # largest RSS of one process
    pss_peaks: dict[str, int] = field(default_factory=dict)  # all processes, PSS summed
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pids in self.groups.items():
                largest = max((rss_bytes(pid) for pid in pids), default=0)
                self.peaks[name] = max(self.peaks.get(name, 0), largest)
                total = sum(pss_bytes(pid) for pid in pids)
                self.pss_peaks[name] = max(self.pss_peaks.get(name, 0), total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
