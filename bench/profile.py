"""Profiles of a service under load: py-spy samples while wrk runs, summarised per function."""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.runner import Load, Scenario, measure

PY_SPY = Path(sys.executable).parent / "py-spy"


def _summary(collapsed: str, top: int = 30) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "self%  function (file:line)"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "incl%  function (file:line)"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def profile(scenario: Scenario, load: Load, pid: int, directory: Path) -> str:
    """Sample `pid` with py-spy while `scenario` runs; write raw stacks and a summary; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    # Raw stacks are megabytes: they stay out of the docs, in a temporary directory.
    raw = Path(tempfile.mkdtemp(prefix="bench-profile-")) / f"{scenario.name}.collapsed.txt"
    command = [
        str(PY_SPY), "record", "--pid", str(pid), "--duration", f"{max(1, int(load.duration))}",
        "--rate", "250", "--format", "raw", "--output", str(raw), "--nonblocking", "--subprocesses",
    ]  # fmt: skip
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runner = threading.Thread(target=measure, args=(scenario, load))
    runner.start()
    runner.join()
    _, error = spy.communicate(timeout=load.duration + 60)
    if not raw.exists():
        return f"py-spy failed: {error.decode(errors='replace').strip()[-300:]}\n"
    summary = f"raw py-spy stacks: {raw}\n" + _summary(raw.read_text())
    (directory / f"{scenario.name}.txt").write_text(summary)
    return summary
