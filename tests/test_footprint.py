"""A lesson's memory is its whole process tree: the kernel and what it started."""

from __future__ import annotations

import subprocess
import sys
import time

from perflab.footprint import Footprint, tree_mb

HOLD_100_MB = (
    "import sys, time\n"
    "block = bytearray(100 * 1024 * 1024)\n"
    "for i in range(0, len(block), 4096): block[i] = 1  # touch every page: resident\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


def test_the_footprint_counts_children_and_their_children_not_the_sampler() -> None:
    before = tree_mb()
    with Footprint(interval=0.05) as footprint:
        # A child that starts a grandchild holding 100 MB, as a kernel starts a server.
        outer = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
             "stdout=sys.stdout); p.wait()", HOLD_100_MB],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert outer.stdout is not None and outer.stdout.readline() == "ready\n"
            time.sleep(0.3)
            during = tree_mb()
        finally:
            for child in __import__("psutil").Process(outer.pid).children(recursive=True):
                child.kill()
            outer.kill()
            outer.wait()
    assert during - before > 95
    assert footprint.peak_mb >= during * 0.9
    assert tree_mb() < during - 95  # gone with the process
