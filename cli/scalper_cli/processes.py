"""Detached local processes: start in their own session, find by PID + command line, stop politely.

A PID alone is not proof: PIDs are reused, and a dead child of this process stays a zombie until
reaped. :func:`is_running` therefore also asks that the command line contains a marker (the
module name, the server binary) and treats zombies as dead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

_TAIL_BYTES = 1 << 20


def spawn_detached(argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path) -> int:
    """Start ``argv`` in its own session (survives the caller), stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(env), cwd=cwd, start_new_session=True, close_fds=True)
    return proc.pid


def is_running(pid: int | None, marker: str | None = None) -> bool:
    """True when ``pid`` is a live (non-zombie) process whose command line contains ``marker``."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker is None or marker in _command_line(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _command_line(proc: psutil.Process) -> str:
    """The command line; it reads empty for a moment while a process execs or exits, so re-read."""
    for _ in range(10):
        cmdline = proc.cmdline()
        if cmdline:
            return " ".join(cmdline)
        time.sleep(0.02)
    return ""


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


@dataclass(frozen=True)
class StopTarget:
    name: str
    pid: int
    marker: str
    sig: signal.Signals = signal.SIGTERM


@dataclass(frozen=True)
class StopResult:
    name: str
    pid: int
    outcome: str  # "stopped" (exited after the polite signal), "killed" (SIGKILL), "not running"


def stop_processes(targets: Sequence[StopTarget], timeout_s: float) -> list[StopResult]:
    """Send each target its polite signal, wait up to ``timeout_s``, then SIGKILL its process group."""
    live = [t for t in targets if is_running(t.pid, t.marker)]
    results = {t.name: StopResult(t.name, t.pid, "not running") for t in targets if t not in live}
    for target in live:
        logger.info("sending %s to %s (pid %s)", target.sig.name, target.name, target.pid)
        _signal(target.pid, target.sig)
    deadline = time.monotonic() + timeout_s
    waiting = list(live)
    while waiting and time.monotonic() < deadline:
        waiting = [t for t in waiting if is_running(t.pid)]  # exiting processes lose their cmdline first
        if waiting:
            time.sleep(0.1)
    for target in live:
        if target in waiting:
            logger.warning("%s (pid %s) still running after %.0fs: SIGKILL", target.name, target.pid, timeout_s)
            _kill_group(target.pid)
            results[target.name] = StopResult(target.name, target.pid, "killed")
        else:
            results[target.name] = StopResult(target.name, target.pid, "stopped")
    return [results[t.name] for t in targets]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        _signal(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []
