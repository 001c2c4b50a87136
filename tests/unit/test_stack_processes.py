"""Process helpers of the local stack on real child processes: liveness, polite stop, SIGKILL, tails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from scalper_cli.processes import (
    StopTarget,
    free_port,
    is_running,
    port_in_use,
    read_pid,
    spawn_detached,
    stop_processes,
    tail,
    write_pid,
)
from tests.waiting import wait_until

SLEEPER = "import time; time.sleep(60)  # scalper-test-sleeper"
TERM_IGNORER = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); "
                "time.sleep(60)  # scalper-test-ignorer")


def _spawn(tmp_path: Path, code: str) -> int:
    return spawn_detached([sys.executable, "-c", code], tmp_path / "child.log", os.environ, tmp_path)


def test_a_detached_child_runs_in_its_own_session(tmp_path: Path) -> None:
    pid = _spawn(tmp_path, SLEEPER)
    try:
        assert is_running(pid, "scalper-test-sleeper")
        assert os.getsid(pid) == pid != os.getsid(0)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_pid_whose_command_line_lacks_the_marker_is_not_the_service(tmp_path: Path) -> None:
    pid = _spawn(tmp_path, SLEEPER)
    try:
        assert not is_running(pid, "-m scalper_policy")
    finally:
        os.kill(pid, signal.SIGKILL)


def test_an_unreaped_dead_child_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: not is_running(child.pid), 10, "the exited child to count as dead")  # a zombie until waited for
    child.wait()


def test_stop_sends_sigterm_and_reports_a_clean_stop(tmp_path: Path) -> None:
    pid = _spawn(tmp_path, SLEEPER)
    [result] = stop_processes([StopTarget("sleeper", pid, "scalper-test-sleeper")], timeout_s=10)
    assert result.outcome == "stopped"
    assert not is_running(pid)


def test_stop_kills_a_process_that_ignores_sigterm_after_the_timeout(tmp_path: Path) -> None:
    pid = _spawn(tmp_path, TERM_IGNORER)
    wait_until(lambda: "armed" in (tmp_path / "child.log").read_text(), 10, "the child to ignore SIGTERM")
    [result] = stop_processes([StopTarget("stubborn", pid, "scalper-test-ignorer")], timeout_s=0.5)
    assert result.outcome == "killed"
    assert not is_running(pid)


def test_stopping_a_process_that_is_gone_says_so() -> None:
    [result] = stop_processes([StopTarget("ghost", 2**22 + 12345, "nothing")], timeout_s=1)
    assert result.outcome == "not running"


def test_pid_files_round_trip_and_tolerate_absence(tmp_path: Path) -> None:
    write_pid(tmp_path / "run" / "x.pid", 4242)
    assert read_pid(tmp_path / "run" / "x.pid") == 4242
    assert read_pid(tmp_path / "missing.pid") is None


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert tail(log, 3) == ["line 997", "line 998", "line 999"]
    assert tail(tmp_path / "none.log", 3) == []


def test_a_free_port_is_not_in_use() -> None:
    assert not port_in_use("127.0.0.1", free_port())
