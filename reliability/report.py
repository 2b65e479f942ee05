"""Short Markdown reports in docs/reliability/: the figures the issue asks for and a verdict."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from reliability.harness import ROOT

DOCS = ROOT / "docs" / "reliability"


@dataclass(frozen=True)
class Check:
    """One acceptance figure: what was measured against what was required."""

    name: str
    measured: str
    required: str
    passed: bool


@dataclass
class Report:
    """A suite's result, written as `docs/reliability/<suite>.md`."""

    suite: str
    title: str
    command: str
    setup: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, measured: object, required: str, passed: bool) -> None:
        self.checks.append(Check(name, str(measured), required, passed))

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def markdown(self) -> str:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        load = os.getloadavg()[0]
        lines = [
            f"# {self.title}",
            "",
            f"Command: `{self.command}`",
            "",
            f"Last run: {when} on {platform.node()} ({os.cpu_count()} CPUs, load average "
            f"{load:.1f} at the end, Python {sys.version.split()[0]}).",
            "",
            f"Verdict: **{'PASS' if self.passed else 'FAIL'}**",
            "",
        ]
        if self.setup:
            lines += ["## Setup", "", *[f"- {item}" for item in self.setup], ""]
        lines += ["## Figures", "", "| check | measured | required | |", "|---|---|---|---|"]
        for c in self.checks:
            lines.append(
                f"| {c.name} | {c.measured} | {c.required} | {'ok' if c.passed else 'FAIL'} |"
            )
        if self.notes:
            lines += ["", "## Notes", "", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"

    def write(self, path: Path | None = None) -> Path:
        path = path or DOCS / f"{self.suite}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())
        return path
