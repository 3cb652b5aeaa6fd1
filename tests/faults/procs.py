"""Real processes for the fault tests: a PostgreSQL cluster and a Redis server of their own (in a temporary
folder, on a free port, so a test may stop and restart them without touching the shared servers), Celery
workers on a queue of their own, and waiting for a condition while watching those processes.

Every class here is a context manager that stops its processes and removes its folder on exit, failure or not.
"""

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_server
from tests.utils import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, watch: tuple = ()) -> Any:
    """Poll ``predicate`` until it returns something true; fail naming ``what`` (with the logs of the watched
    processes) when ``timeout`` seconds pass or a watched process exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc in watch:
            if not proc.alive():
                pytest.fail(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.log_tail()}" for p in watch)
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen | None, *, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL, to the process group this module started (the process and its children)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class _Logged:
    """A process writing to a log file in a folder of its own."""

    name = "process"
    proc: subprocess.Popen | None = None
    log_path: Path

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log()[-chars:]


# --- PostgreSQL ------------------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Debian's server binaries (initdb, pg_ctl), newest major version first; None when not installed."""
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if os.access(Path(bindir) / "initdb", os.X_OK) and os.access(Path(bindir) / "pg_ctl", os.X_OK):
            return Path(bindir)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


class Postgres(_Logged):
    """A throw-away PostgreSQL cluster (trust authentication) with one database, ``opsportal``.

    As root the server runs as the ``postgres`` user (PostgreSQL refuses root), in a folder that user owns.
    """

    name = "postgres"

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            require_server("PostgreSQL server binaries", "initdb and pg_ctl (Debian package postgresql) not found")
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="opsportal-faults-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/opsportal"

    def _run(self, tool: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.log_tail()}")
        return done

    def __enter__(self) -> "Postgres":
        try:
            if self.as_root:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
            )
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start")
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "opsportal")
        except BaseException:
            self.__exit__()
            raise
        return self

    def alive(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def restart(self) -> None:
        """Stop fast (every session is cut, open transactions roll back) and start again."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-m", "fast", "-w", "-t", "60", "restart")

    def __exit__(self, *exc) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Redis -----------------------------------------------------------------------------------------------------


class Redis(_Logged):
    """A redis-server of its own, persisting to an append-only file as production must (a restart keeps queued
    tasks); stop() and start() keep the folder, so the data survives like a service restart."""

    name = "redis-server"

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            require_server("redis-server", "the redis-server binary (Debian package redis-server) is not on PATH")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="opsportal-faults-redis-"))
        self.log_path = self.dir / "redis.log"
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.log_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.ping, timeout=30, what="redis-server to answer", watch=(self,))

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def stop(self) -> None:
        """A normal shutdown (SIGTERM): Redis flushes its append-only file and exits."""
        _stop(self.proc)
        self.proc = None

    def __enter__(self) -> "Redis":
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Celery workers --------------------------------------------------------------------------------------------


class Worker(_Logged):
    """``celery worker`` consuming only a queue of its own (no other worker can take the test's tasks)."""

    def __init__(self, *, env: dict[str, str], pool: str = "prefork", concurrency: int = 1) -> None:
        tag = uuid.uuid4().hex[:8]
        self.queue = f"q-faults-{tag}"
        self.hostname = f"faults-{tag}@localhost"
        self.name = f"worker {self.hostname}"
        self.env = env
        self.pool = pool
        self.concurrency = concurrency
        self.dir = Path(tempfile.mkdtemp(prefix="opsportal-faults-worker-"))
        self.log_path = self.dir / "worker.log"

    def __enter__(self) -> "Worker":
        try:
            with open(self.log_path, "w") as log:
                self.proc = self._start(log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "opsportal",
                "worker",
                "-Q",
                self.queue,
                "-n",
                self.hostname,
                f"--pool={self.pool}",
                f"--concurrency={self.concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __exit__(self, *exc) -> None:
        _stop(self.proc, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_ready(self, timeout: float = 90) -> None:
        wait_for(lambda: " ready." in self.log(), timeout=timeout, what=f"{self.name} to be ready", watch=(self,))

    def pool_children(self) -> list[int]:
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                return [int(p) for p in fh.read().split()]
        except FileNotFoundError:
            return []

    def kill_pool_child(self) -> int:
        """SIGKILL the (single) pool process, as the kernel's OOM killer would."""
        child = wait_for(self.pool_children, timeout=10, what="the pool process", watch=(self,))[0]
        os.kill(child, signal.SIGKILL)
        return child

    def outcomes(self, task_id: str) -> list[str]:
        """What the worker logged as the end of each run of ``task_id``: "succeeded", "retry", "raised" ..."""
        words = ("succeeded", "retry", "raised", "failed")
        return [
            next(w for w in words if f"] {w}" in line or f"] {w}:" in line)
            for line in self.log().splitlines()
            if f"[{task_id}]" in line and any(f"] {w}" in line for w in words)
        ]


# --- Running Django code in a child process --------------------------------------------------------------------


def django_child(code: str, *, env: dict[str, str], timeout: float = 120) -> Any:
    """Run ``code`` in a fresh Python process with Django set up; it binds ``result``, printed back as JSON.

    Used where the test process's own database connection is not the one under test (an own PostgreSQL).
    """
    script = (
        "import django, json, sys\n"
        "django.setup()\n"
        "result = None\n"
        f"{code}\n"
        "sys.stdout.write('\\n@@RESULT@@' + json.dumps(result, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0 or "@@RESULT@@" not in done.stdout:
        pytest.fail(f"child process failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.rsplit("@@RESULT@@", 1)[1])
