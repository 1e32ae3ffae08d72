"""A throwaway PostgreSQL server for tests (and the queue benchmark): never a mock.

``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql``
package), else ``pg_config --bindir``, else ``PATH``.  As root, initdb refuses to run, so
the server runs as an unprivileged user: ``postgres`` when it exists (Debian's package
creates it), else a system user made for the purpose.  Its data directory and unix socket
live in a private temporary directory owned by that user; it listens on 127.0.0.1 on a
free port, and the test user logs in over TCP with a password (SCRAM), so the tests see
a database URL with a password in it, as a deployment would, and can check it never
leaks.

Without the binaries (or psycopg) the tests that need a server are skipped, saying why;
with ``HARBOR_REQUIRE_POSTGRES=1`` (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

REQUIRE_ENV = "HARBOR_REQUIRE_POSTGRES"
USER = "harbor"
# Distinctive, so leak checks can search every log and answer for it.
PASSWORD = "canary-db-password-" + secrets.token_hex(6)
_SYSTEM_USER = "harbor-pg"


def _bindir() -> Path | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if (Path(out) / "initdb").is_file():
                return Path(out)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None when one can."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return (
            "psycopg and psycopg-pool are not installed "
            "(pip install 'psycopg[binary]' psycopg-pool)"
        )
    if _bindir() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin, "
            "pg_config --bindir or PATH (apt-get install postgresql)"
        )
    return None


def skip_or_fail(reason: str) -> None:
    """Skip with the reason, or fail when CI requires PostgreSQL."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def needs_postgres_client() -> None:
    """At the top of a test module that imports psycopg: skip the module without it (or
    fail it, in CI)."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        reason = "psycopg and psycopg-pool are not installed (the [postgres] extra)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_user() -> str | None:
    """The unprivileged user the server runs as when we are root (None: ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _SYSTEM_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _SYSTEM_USER],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return _SYSTEM_USER


class PgServer:
    """One initdb'd cluster, started with ``pg_ctl``; ``create_database`` gives each test
    its own database (URL with the password)."""

    def __init__(self, *, fsync: bool = False) -> None:
        bindir = _bindir()
        if bindir is None:  # pragma: no cover - checked by unavailable_reason
            raise RuntimeError("no PostgreSQL binaries")
        self.bindir = bindir
        self.fsync = fsync
        self.user = _run_as_user()
        self.tmp = Path(tempfile.mkdtemp(prefix="harbor-pg-"))
        self.data = self.tmp / "data"
        self.log = self.tmp / "server.log"
        self.port = _free_port()
        self._lock = threading.Lock()
        self._databases = 0
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            os.chown(self.tmp, info.pw_uid, info.pw_gid)
        os.chmod(self.tmp, 0o700)

    # -- running the binaries as the server's user -------------------------------------

    @property
    def wrap(self) -> Sequence[str]:
        return ("runuser", "-u", self.user, "--") if self.user is not None else ()

    def _run(self, *argv: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [*self.wrap, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.tmp,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({proc.returncode}): {proc.stderr or proc.stdout}"
                + self.log_tail()
            )
        return proc.stdout

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\nserver log:\n" + self.log.read_text(errors="replace")[-3000:]
        return ""

    def init(self) -> None:
        pwfile = self.tmp / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            os.chown(pwfile, info.pw_uid, info.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
        finally:
            pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write(
                "\n# harbor tests\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.tmp}'\n"
                "max_connections = 200\n"
                f"fsync = {'on' if self.fsync else 'off'}\n"
                "full_page_writes = off\n"
                "log_min_messages = warning\n"
                "log_connections = off\n"
            )

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                  "-t", "60", "-l", str(self.log), "restart")  # fmt: skip

    def running(self) -> bool:
        proc = subprocess.run(
            [*self.wrap, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True, text=True, timeout=30, check=False, cwd=self.tmp,
        )  # fmt: skip
        return proc.returncode == 0

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- databases ---------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL (with the password)."""
        import psycopg

        with self._lock:
            self._databases += 1
            name = f"{prefix}_{self._databases}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


_SHARED: PgServer | None = None
_SHARED_LOCK = threading.Lock()


def shared_server() -> PgServer:
    """The session's one server, started on first use and stopped when Python exits."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            server = PgServer()
            try:
                server.init()
                server.start()
                server.wait_ready()
            except BaseException:
                server.destroy()
                raise
            import atexit

            atexit.register(server.destroy)
            _SHARED = server
        elif not _SHARED.running():
            _SHARED.start()  # a test stopped it and failed before starting it again
            _SHARED.wait_ready()
        return _SHARED


def server_or_skip() -> PgServer:
    """The session's throwaway server; skips (or, in CI, fails) the test when there is
    none.  Test modules wrap it in a session fixture: ``pg_server``."""
    reason = unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)
    return shared_server()


def fresh_database(server: PgServer) -> str:
    """A new, empty database on ``server`` (started again if a test left it stopped)."""
    if not server.running():
        server.start()
        server.wait_ready()
    return server.create_database()
