"""``scalper --help`` wall-clock time (the installed entry point, a fresh process each run), and for
comparison a command that loads its module (``scalper keys new --help``). Goal: ``--help`` under 1 s.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 7


def timed(args: list[str]) -> list[float]:
    binary = shutil.which("scalper", path=str(Path(sys.executable).parent)) or "scalper"
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([binary, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    for args in (["--help"], ["keys", "new", "--help"], ["ingest", "--help"]):
        times = timed(args)
        print(f"scalper {' '.join(args)}: median {statistics.median(times):.3f} s, "
              f"min {min(times):.3f} s, max {max(times):.3f} s over {RUNS} runs")


if __name__ == "__main__":
    main()
