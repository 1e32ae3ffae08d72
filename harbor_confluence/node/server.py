"""Running a node: its state directory, its listeners, and uvicorn.

The node listens on a unix socket in its state directory (mode 0600: only its own OS
user, or a group you name, may connect) and, when asked, on TCP: loopback in plain HTTP,
anything else only with TLS.  Its state directory must belong to the user running it
and be private (0700), as ssh insists for ``~/.ssh``.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import ipaddress
import os
import signal
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harbor_confluence.config import state_dir
from harbor_confluence.errors import ConfigError

__all__ = ["SOCKET_NAME", "Listen", "check_home", "init_home", "parse_listen", "serve"]

SOCKET_NAME = "node.sock"


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {text!r}: use HOST:PORT, for example 127.0.0.1:8443")
    return Listen(host, int(port))


def check_home(home: Path) -> None:
    """The state directory must be this user's and private (0700)."""
    info = home.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"the node's state directory {home} belongs to uid {info.st_uid}, not to the user "
            f"running the node (uid {os.getuid()}); run the node as its owner"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"the node's state directory {home} is open to others "
            f"(mode {stat.S_IMODE(info.st_mode):o}); run: chmod 700 {home}"
        )


def init_home(home: str | Path | None) -> Path:
    """Create (or check) a node's state directory and its integrity key."""
    path = state_dir(home)
    os.chmod(path, 0o700)
    check_home(path)
    with contextlib.suppress(ImportError):  # the keyed seals' key, made before first use
        from harbor_confluence.review.integrity import IntegrityKey

        IntegrityKey.for_home(path)
    return path


def _unix_socket(path: Path, mode: int, group: str | None) -> socket.socket:
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"{path} exists and is not a socket; remove it or pick --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a stale socket from a node that is gone
        else:
            raise ConfigError(f"a node is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never world-connectable, not even between bind and chmod
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    if group is not None:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError) as exc:
            sock.close()
            raise ConfigError(f"--socket-group {group}: {exc}") from None
    os.chmod(path, mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _tcp_socket(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--listen {listen.host}:{listen.port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(
    home: str | Path | None = None,
    *,
    socket_path: str | Path | None = None,
    socket_mode: int = 0o600,
    socket_group: str | None = None,
    listen: Listen | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    log_level: str = "warning",
) -> None:
    """Serve the node until SIGTERM or SIGINT."""
    import uvicorn

    from .app import build_app
    from .service import NodeService

    path = state_dir(home)
    check_home(path)
    if listen is not None and not listen.loopback and not (tls_cert and tls_key):
        raise ConfigError(
            f"--listen {listen.host}: beyond loopback the node needs --tls-cert and --tls-key"
        )
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if socket_mode & 0o007:
        raise ConfigError("--socket-mode: the socket may not be open to every user (o=...)")
    service = NodeService(path)
    service.port.target()  # a node without a base URL or a credential refuses to start
    app = build_app(service)
    sock_file = Path(socket_path) if socket_path else path / SOCKET_NAME
    listeners: list[tuple[socket.socket, dict[str, Any]]] = [
        (_unix_socket(sock_file, socket_mode, socket_group), {})
    ]
    if listen is not None:
        tls = {"ssl_certfile": tls_cert, "ssl_keyfile": tls_key} if tls_cert else {}
        listeners.append((_tcp_socket(listen), tls))
    where = [f"unix:{sock_file}"]
    if listen is not None:
        scheme = "https" if tls_cert else "http"
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        where.append(f"{scheme}://{host}:{listen.port}")

    async def main() -> None:
        servers = []
        for sock, tls in listeners:
            config = uvicorn.Config(
                app,
                lifespan="off",
                log_level=log_level,
                access_log=False,
                timeout_graceful_shutdown=3,  # open review pages hold event streams
                **tls,
            )
            servers.append((_Quiet(config), sock))

        def stop() -> None:
            for server, _ in servers:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        async with app.router.lifespan_context(app):
            sys.stderr.write("harbor node listening on " + " and ".join(where) + "\n")
            sys.stderr.flush()
            await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in servers))

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(FileNotFoundError):
            sock_file.unlink()
        service.close()


class _Quiet:
    """uvicorn's Server without its own signal capture (one handler stops every listener)."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:
                yield

        self._server = _Server(config)

    @property
    def should_exit(self) -> bool:
        return bool(self._server.should_exit)

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._server.should_exit = value

    async def serve(self, sockets: list[socket.socket]) -> None:
        await self._server.serve(sockets=sockets)
