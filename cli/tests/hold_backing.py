"""Start the backing servers, report the process tree on stdout, and wait to be stopped."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from taskmesh.backing import start_backing
from taskmesh.processes import termination_as_interrupt

with (
    contextlib.suppress(KeyboardInterrupt),
    termination_as_interrupt(),
    start_backing(Path(sys.argv[1]), durable=False) as backing,
):
    print(json.dumps({"pid": os.getpid(), "postgres_url": backing.postgres_url}), flush=True)
    while True:
        time.sleep(1)
