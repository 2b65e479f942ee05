"""Run one fuzz target under atheris: `python -m fuzz.run_target NAME [libFuzzer flags]`."""

from __future__ import annotations

import importlib
import sys

import atheris


def main() -> None:
    """Fuzz the target named by the first argument with the remaining libFuzzer flags."""
    name, *flags = sys.argv[1:]
    target = importlib.import_module(f"fuzz.{name}_target")
    atheris.Setup([sys.argv[0], *flags], target.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
