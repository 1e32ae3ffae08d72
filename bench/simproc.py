"""A loopback simulator in a child process (see ``bench/simserver.py``).

Running the server in its own process keeps its request handling out of the measured
process: the client's timings and ``tracemalloc`` figures are the client's alone, and the
two sides do not share one GIL, as with a real Confluence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import TracebackType
from typing import Any

from bench.common import API_TOKEN, EMAIL, ROOT, bench_env


class SimProcess:
    def __init__(self, extra_pages: int = 0) -> None:
        self.extra_pages = extra_pages
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.base_url = ""

    def start(self) -> SimProcess:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.simserver",
                "--email",
                EMAIL,
                "--token",
                API_TOKEN,
                "--extra-pages",
                str(self.extra_pages),
            ],
            cwd=ROOT,
            env=bench_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait(timeout=10)
            raise RuntimeError(f"the simulator process exited with {code} before listening")
        info = json.loads(line)
        self.url, self.base_url = info["url"], info["base_url"]
        return self

    def _ask(self, command: str) -> Any:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the simulator process is not running")
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    def request_count(self) -> int:
        return int(self._ask("count"))

    def clear(self) -> None:
        self._ask("clear")

    def exchanges(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._ask("exchanges")
        return result

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
