"""Running a snippet in a fresh interpreter under an address-space limit and a timeout, so that a test of
an allocation bound cannot exhaust the machine even when the bound is missing (the allocation then fails,
and the test with it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = """\
import resource
_limit = int({gib} * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
"""


def run_limited(code: str, gib: float = 2.5, timeout: float = 180) -> str:
    """Run ``code`` under ``gib`` GiB of address space; return its stdout, or raise AssertionError with
    its stderr when it fails (``subprocess.TimeoutExpired`` when it runs past ``timeout`` seconds)."""
    done = subprocess.run([sys.executable, "-c", PRELUDE.format(gib=gib) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"exit status {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}")
    return done.stdout
