"""Ending a process without tearing its interpreter down. Once a process's work is done (its
results delivered, its files closed), freeing every module and object one by one only delays
its exit: ~0.1 s for the command's own process, ~0.2 s for an ingest worker holding GBs. The
kernel frees the memory at once."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def end_process(code: int = 0) -> NoReturn:
    """Flush the standard streams and end the process with `code`, skipping the teardown (the
    caller runs the exit handlers it needs first)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
