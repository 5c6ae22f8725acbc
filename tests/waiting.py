"""How long a test waits on a condition before it calls the wait a hang.

These bounds are not timings: each wait returns as soon as its condition holds, and the bound only turns a
hang into a failure instead of a stuck suite. A child process that imports torch needs seconds on an idle
machine and minutes on a busy one (uvicorn under `nice` beside a two-thread training run here did not
answer within 90 s, and 40 tests errored on the shared fixture), so the bound is generous.
"""

from __future__ import annotations

# A server or worker process starting (importing torch, opening the registry, loading models).
START_SECONDS = 600.0
# Something a running process does by itself (picks up an alias, records a signal, finishes a trial).
SETTLE_SECONDS = 300.0
