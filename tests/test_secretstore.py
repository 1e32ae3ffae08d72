"""The hidden token store: file permissions as ssh checks them, atomic writes, the keyring
backend, and the ``token`` commands that read secrets from a prompt or stdin only."""

from __future__ import annotations

import json
import os
import pickle
import pty
import select
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.config import LocalConfig
from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.secrets.store import FileBackend, SecretRecord, SecretStore
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, ROOT, CliResult

SECRET_FILE = Path("secrets") / "credential.json"


def basic_record(token: str = API_TOKEN) -> SecretRecord:
    return SecretRecord(kind="basic", email=EMAIL, api_token=token)


def test_save_is_owner_only_and_atomic(home: Path) -> None:
    SecretStore(home).save(basic_record())
    secrets_dir = home / "secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / SECRET_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in secrets_dir.iterdir()) == ["credential.json"]  # no temp left
    loaded = SecretStore(home).load()
    assert loaded is not None and loaded.kind == "basic" and loaded.email == EMAIL
    assert loaded.api_token == API_TOKEN


def test_save_tightens_a_loose_directory_it_owns(home: Path) -> None:
    (home / "secrets").mkdir(mode=0o755, parents=True)
    os.chmod(home / "secrets", 0o755)
    SecretStore(home).save(basic_record())
    assert stat.S_IMODE((home / "secrets").stat().st_mode) == 0o700


def test_file_readable_by_others_is_refused_with_the_fix(home: Path) -> None:
    SecretStore(home).save(basic_record())
    path = home / SECRET_FILE
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as info:
        SecretStore(home).load()
    message = str(info.value)
    assert "0644" in message and "too open" in message
    assert f"chmod 600 {path}" in message
    assert API_TOKEN not in message


def test_group_writable_file_is_refused_too(home: Path) -> None:
    SecretStore(home).save(basic_record())
    os.chmod(home / SECRET_FILE, 0o620)
    with pytest.raises(ConfigError, match="chmod 600"):
        SecretStore(home).load()


def test_loose_directory_is_refused_with_the_fix(home: Path) -> None:
    SecretStore(home).save(basic_record())
    os.chmod(home / "secrets", 0o755)
    with pytest.raises(ConfigError) as info:
        SecretStore(home).load()
    assert f"chmod 700 {home / 'secrets'}" in str(info.value)


def test_loose_file_stops_a_run_before_anything_is_sent(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    SecretStore(home).save(basic_record())
    os.chmod(home / SECRET_FILE, 0o644)
    with Port.load(home=home, base_url=sim.url) as port, pytest.raises(ConfigError) as info:
        port.call("search-pages", {"query": {"limit": 1}})
    assert "chmod 600" in str(info.value)
    LocalConfig(home).set("base-url", sim.url)
    result = cli("run", "search-pages", "--input", '{"query": {"limit": 1}}')
    assert result.code == 1 and f"chmod 600 {home / SECRET_FILE}" in result.err
    status = cli("token", "status")
    assert status.code == 1 and "chmod 600" in status.err
    assert sim.request_count == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_file_owned_by_someone_else_is_refused(home: Path) -> None:
    SecretStore(home).save(basic_record())
    os.chown(home / SECRET_FILE, 4242, -1)
    with pytest.raises(ConfigError, match="owned by uid 4242"):
        SecretStore(home).load()


def test_symlinked_secret_file_is_refused(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(basic_record().to_bytes())
    os.chmod(elsewhere, 0o600)
    (home / "secrets").mkdir(mode=0o700, parents=True)
    (home / SECRET_FILE).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symbolic link"):
        SecretStore(home).load()


def test_corrupt_record_names_the_fix_not_the_content(home: Path) -> None:
    SecretStore(home).save(basic_record())
    (home / SECRET_FILE).write_text('{"kind": "basic", "api_token": "' + API_TOKEN + '"')
    with pytest.raises(ConfigError) as info:
        SecretStore(home).load()
    assert "token set" in str(info.value) and API_TOKEN not in str(info.value)


def test_record_never_shows_its_secrets() -> None:
    record = SecretRecord(
        kind="oauth", client_id="app", client_secret=API_TOKEN, refresh_token=API_TOKEN
    )
    assert API_TOKEN not in repr(record) and API_TOKEN not in str(record)
    assert API_TOKEN not in json.dumps(record.describe())
    with pytest.raises(TypeError):
        pickle.dumps(record)
    with pytest.raises(ConfigError, match="needs a client id"):
        SecretRecord(kind="oauth", client_secret="x", refresh_token="y")


# -- token commands -----------------------------------------------------------------------


def test_token_set_basic_from_stdin(home: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("token", "set", "--basic", "--email", EMAIL, "--json", stdin=API_TOKEN + "\n")
    assert result.code == 0, result.err
    assert result.json() == {
        "stored": "basic",
        "backend": "file",
        "location": str(home / SECRET_FILE),
    }
    assert API_TOKEN not in result.out + result.err
    stored = json.loads((home / SECRET_FILE).read_text())
    assert stored["api_token"] == API_TOKEN and stored["email"] == EMAIL
    status = cli("token", "status", "--json")
    assert status.code == 0
    assert status.json()["stored"] == {"kind": "basic", "email": EMAIL}
    assert API_TOKEN not in status.out
    deleted = cli("token", "delete")
    assert deleted.code == 0 and "removed" in deleted.out
    assert not (home / SECRET_FILE).exists()
    assert cli("token", "status").out.startswith("no credential stored")


def test_token_set_oauth_reads_every_secret_from_stdin(
    home: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli(
        "token", "set", "--oauth", "--client-id", "app-1", stdin="the-secret\nthe-refresh\n"
    )
    assert result.code == 0, result.err
    record = SecretStore(home).load()
    assert record is not None and record.kind == "oauth"
    assert (record.client_secret, record.refresh_token) == ("the-secret", "the-refresh")
    assert record.access_token is None  # optional: the first call refreshes
    status = cli("token", "status", "--json").json()["stored"]
    assert status["client_id"] == "app-1" and status["has_refresh_token"] is True
    assert "the-secret" not in json.dumps(status)


def test_token_set_refuses_missing_or_multi_word_secrets(
    home: Path, cli: Callable[..., CliResult]
) -> None:
    empty = cli("token", "set", "--bearer", stdin="\n")
    assert empty.code == 2 and "no access token" in empty.err
    spaced = cli("token", "set", "--bearer", stdin="two words\n")
    assert spaced.code == 2 and "two words" not in spaced.err
    assert not (home / SECRET_FILE).exists()


def test_secrets_are_never_command_line_arguments(
    home: Path, cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str]
) -> None:
    from harbor_confluence.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["token", "set", "--basic", "--email", EMAIL, API_TOKEN])
    assert info.value.code == 2
    for flag in ("--token", "--api-token", "--password", "--client-secret", "--refresh-token"):
        with pytest.raises(SystemExit):
            parser.parse_args(["token", "set", "--bearer", flag, "x"])
    capsys.readouterr()
    assert not (home / SECRET_FILE).exists()


def test_token_set_prompts_without_echo_on_a_terminal(home: Path) -> None:
    """A real pseudo-terminal: the typed token must not come back on the screen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFLUENCE_")}
    env["HARBOR_CONFLUENCE_HOME"] = str(home)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the pty as its controlling terminal
        os.chdir(ROOT)
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "harbor_confluence.cli", "token", "set", "--bearer"],
            env,
        )
    seen = b""

    def read_until(marker: bytes, timeout: float = 30.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                seen += chunk

    read_until(b"access token: ")
    assert b"access token: " in seen
    os.write(fd, API_TOKEN.encode() + b"\n")
    read_until(b"stored")
    read_until(b"\n\n", timeout=2.0)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"stored the bearer credential" in seen
    assert API_TOKEN.encode() not in seen
    record = SecretStore(home).load()
    assert record is not None and record.access_token == API_TOKEN


def test_environment_overrides_the_store(
    home: Path, sim: Simulator, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    SecretStore(home).save(basic_record("a-wrong-token"))
    LocalConfig(home).set("base-url", sim.url)
    assert cli("run", "search-pages", "--input", '{"query": {"limit": 1}}').code == 5  # 401
    monkeypatch.setenv("CONFLUENCE_EMAIL", EMAIL)
    monkeypatch.setenv("CONFLUENCE_API_TOKEN", API_TOKEN)
    assert cli("run", "search-pages", "--input", '{"query": {"limit": 1}}').code == 0
    status = cli("token", "status", "--json").json()
    assert status["environment"] == ["CONFLUENCE_API_TOKEN"]
    assert API_TOKEN not in json.dumps(status)


# -- the keyring backend ----------------------------------------------------------------


@pytest.fixture
def memory_keyring() -> Iterator[dict[tuple[str, str], str]]:
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    entries: dict[tuple[str, str], str] = {}

    class Memory(KeyringBackend):
        """A keyring backend (the library's own base class) holding entries in memory."""

        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            return entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            entries.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        yield entries
    finally:
        keyring.set_keyring(previous)


def test_keyring_backend_when_asked(
    home: Path,
    sim: Simulator,
    cli: Callable[..., CliResult],
    memory_keyring: dict[tuple[str, str], Any],
) -> None:
    SecretStore(home).save(basic_record("an-old-file-token"))
    result = cli(
        "token", "set", "--basic", "--email", EMAIL, "--backend", "keyring", stdin=API_TOKEN
    )
    assert result.code == 0, result.err
    assert "keyring" in result.out and API_TOKEN not in result.out
    assert LocalConfig(home).get("secret-backend") == "keyring"
    assert not (home / SECRET_FILE).exists()  # moved, not copied
    [(service, _)] = memory_keyring
    assert service == "harbor-confluence"
    LocalConfig(home).set("base-url", sim.url)
    ran = cli("run", "search-pages", "--input", '{"query": {"limit": 1}}', "--json")
    assert ran.code == 0 and ran.json()["ok"] is True
    assert cli("token", "status", "--json").json()["backend"] == "keyring"
    assert cli("token", "delete").code == 0 and not memory_keyring
    cli("token", "set", "--bearer", "--backend", "keyring", stdin="a-keyring-token")
    assert memory_keyring
    back = cli("token", "set", "--bearer", "--backend", "file", stdin="a-file-token")
    assert back.code == 0 and not memory_keyring  # moved back: the keyring entry is gone
    assert LocalConfig(home).get("secret-backend") == "file"
    assert "a-keyring-token" not in (home / SECRET_FILE).read_text()


def test_keyring_fail_backend_is_refused_clearly(home: Path) -> None:
    keyring = pytest.importorskip("keyring")
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(ConfigError, match="no usable keyring backend"):
            SecretStore(home, "keyring")
    finally:
        keyring.set_keyring(previous)


def test_keyring_not_installed_names_the_extra(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"harbor-confluence\[keyring\]"):
        SecretStore(home, "keyring")


def test_unknown_backend_is_refused(home: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("config", "set", "secret-backend", "vault")
    assert result.code == 1 and "file, keyring" in result.err
    with pytest.raises(ConfigError, match="unknown secret backend"):
        SecretStore(home, "vault")


def test_file_backend_location_is_under_the_state_dir(home: Path) -> None:
    assert FileBackend(home).location == str(home / SECRET_FILE)
