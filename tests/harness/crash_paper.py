"""``trader`` with a SIGKILL of itself right after the first fill is stored (before its status).

Usage: ``python crash_paper.py run --config FILE --mode paper``; the test then restarts
the real daemon and checks what reconciliation makes of the order.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trader.store.orders import Journal

_stored = Journal.fill_received


def fill_received_then_die(self, order, fill):  # type: ignore[no-untyped-def]
    inserted = _stored(self, order, fill)
    if inserted:
        print(f"KILLED_AFTER_FILL {fill.client_order_id}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return inserted


Journal.fill_received = fill_received_then_die  # type: ignore[method-assign]

from trader.cli import main  # noqa: E402 - after the patch above

main()
