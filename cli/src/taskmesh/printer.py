"""Process output on one terminal: each line behind its process's coloured name."""

from __future__ import annotations

import itertools
import sys
import threading
from typing import IO

import click

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_green", "white")


class LogPrinter:
    """Writes each process's output lines behind its coloured name."""

    def __init__(self, stream: IO[str] | None = None, *, colour: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() if colour is None else colour
        self.width = 8
        self._colours: dict[str, str] = {}
        self._cycle = itertools.cycle(COLOURS)
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        """Print one line of `name`'s output."""
        if name not in self._colours:
            self._colours[name] = "white" if name == "taskmesh" else next(self._cycle)
            self.width = max(self.width, len(name))
        prefix = f"{name:<{self.width}} |"
        if self.colour:
            prefix = click.style(prefix, fg=self._colours[name], bold=name == "taskmesh")
        with self._lock:
            self.stream.write(f"{prefix} {text}\n")
            self.stream.flush()

    def info(self, text: str) -> None:
        """Print a line of our own."""
        self.line("taskmesh", text)
