"""Run every fuzz target (or some) for a while: `python -m fuzz --seconds 60 [target ...]`.

Each target runs in its own process under libFuzzer's time budget; a crash prints the input
that caused it (saved as `crash-*` in the working directory) and fails the run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TARGETS = ("tokens", "events", "tasks_params")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen targets one after another; return non-zero if any found a crash."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("targets", nargs="*", metavar="target", help=f"any of {', '.join(TARGETS)}")
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument("--artifacts", default="./", help="where crashing inputs are saved")
    options = parser.parse_args(argv)
    unknown = set(options.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    failed = []
    for name in options.targets or TARGETS:
        started = time.monotonic()
        command = [
            sys.executable,
            "-m",
            "fuzz.run_target",
            name,
            f"-max_total_time={options.seconds}",
            f"-artifact_prefix={options.artifacts}",
            "-rss_limit_mb=1024",
            "-timeout=10",
            "-print_final_stats=1",
        ]
        code = subprocess.run(command, check=False).returncode
        took = time.monotonic() - started
        print(f"fuzz {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {took:.0f} s")
        if code != 0:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
