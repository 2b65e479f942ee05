"""The CLI's tests start `taskmesh up` and stop it as a terminal would."""

from __future__ import annotations

import signal

# A shell starts a background job (`cmd &`) with SIGINT ignored, and every child inherits that, so
# the tests that stop a child with SIGINT (Ctrl-C) would wait forever. A handler here is reset to
# the default in each child at exec, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
