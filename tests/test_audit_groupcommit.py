"""Group commit in the audit log: batches keep one unbroken keyed chain, a durable record
is in the file before ``append`` returns (a SIGKILL cannot take it back), readers see
every record appended before them, and exit and fork leave nothing behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.review.audit import GAP_EVENT, AuditLog

# Appends durable records from several threads (with reads, not waited for, in between)
# and prints one line per durable record once ``append`` has returned.
CRASH_WRITER = r"""
import sys, threading
from pathlib import Path
from harbor_confluence.review.audit import AuditLog

log = AuditLog(Path(sys.argv[1]))
base = int(sys.argv[2])
out = threading.Lock()

def work(worker: int) -> None:
    i = 0
    while True:
        log.append("read", durable=False, worker=worker, i=i)
        log.append("write", durable=True, worker=worker, i=i)
        with out:
            sys.stdout.write(f"{worker} {i}\n")
            sys.stdout.flush()
        i += 1

threads = [threading.Thread(target=work, args=(base + w,), daemon=True) for w in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""

# Several threads append a fixed number of mixed records, then the process exits.
MIXED_WRITER = r"""
import sys, threading
from pathlib import Path
from harbor_confluence.review.audit import AuditLog

log = AuditLog(Path(sys.argv[1]))
proc, count = sys.argv[2], int(sys.argv[3])

def work(worker: int) -> None:
    for i in range(count):
        log.append("mixed", durable=i % 3 == 0, proc=proc, worker=worker, i=i)

threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""

# Daemon threads append reads (not waited for) until the main thread leaves: the reads
# acknowledged before it says EXIT must be in the file after the interpreter's exit.
EXIT_WRITER = r"""
import sys, threading, time
from pathlib import Path
from harbor_confluence.review.audit import AuditLog

log = AuditLog(Path(sys.argv[1]))
out = threading.Lock()

def work(worker: int) -> None:
    i = 0
    while True:
        log.append("read", durable=False, worker=worker, i=i)
        with out:
            sys.stdout.write(f"{worker} {i}\n")
            sys.stdout.flush()
        i += 1

for w in range(4):
    threading.Thread(target=work, args=(w,), daemon=True).start()
time.sleep(0.3)
with out:
    sys.stdout.write("EXIT\n")
    sys.stdout.flush()
    sys.exit(0)
"""


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _acks(text: str) -> list[tuple[int, int]]:
    """The ``worker i`` lines a writer printed (a last line cut by the kill is not one)."""
    out = []
    for line in text.split("\n")[:-1]:
        if line and line != "EXIT":
            worker, i = line.split()
            out.append((int(worker), int(i)))
    return out


def _keys(log: AuditLog, event: str) -> list[tuple[int, int]]:
    return [(r["worker"], r["i"]) for r in log.records() if r.get("event") == event]


def _assert_unbroken(log: AuditLog) -> list[dict[str, Any]]:
    records = log.records()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["event"] != GAP_EVENT for r in records)
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == len(records)
    return records


def test_sigkill_loses_no_acknowledged_durable_record(tmp_path: Path) -> None:
    """Kill a writer mid-stream, several times: every durable record it acknowledged is
    in the file, the chain verifies (at worst a torn, unacknowledged last line, which the
    next append cuts), and appending goes on."""
    path = tmp_path / "state" / "audit.jsonl"
    log = AuditLog(path)
    log.append("start", durable=True)
    rng = random.Random(1414)
    for round_ in range(4):
        need = rng.randint(10, 120)
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, str(path), str(round_ * 10)],
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        watchdog = threading.Timer(60, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            seen = []
            while len(seen) < need:
                line = proc.stdout.readline()
                assert line, "the writer stopped before it was killed"
                seen.append(line)
            time.sleep(rng.uniform(0, 0.02))  # somewhere inside a batch, or between them
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()
            assert proc.wait() == -signal.SIGKILL
        finally:
            watchdog.cancel()
            if proc.stdout is not None:
                proc.stdout.close()
        acked = _acks("".join(seen) + rest)
        assert len(acked) >= need

        raw = path.read_bytes()
        result = log.verify()
        if not result.ok:  # only a line the kill cut short, never acknowledged
            assert not raw.endswith(b"\n"), result.reason
            assert result.first_bad == raw.count(b"\n")
        written = set(_keys(log, "write"))
        assert [a for a in acked if a not in written] == []

        after = log.append("after-crash", durable=True, round=round_)
        records = _assert_unbroken(log)
        assert records[-1] == after and after["seq"] == len(records)


def test_threads_mixing_reads_and_writes_make_one_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "state" / "audit.jsonl")
    threads_n, per = 8, 60
    returned: dict[tuple[int, int], dict[str, Any]] = {}

    def work(worker: int) -> None:
        for i in range(per):
            durable = (worker + i) % 2 == 0
            returned[(worker, i)] = log.append("mixed", durable=durable, worker=worker, i=i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = _assert_unbroken(log)
    assert len(records) == threads_n * per
    by_key = {(r["worker"], r["i"]): r for r in records}
    assert len(by_key) == threads_n * per
    for worker in range(threads_n):  # each thread's records in the order it appended them
        mine = [r["i"] for r in records if r["worker"] == worker]
        assert mine == list(range(per))
    for (worker, i), got in returned.items():
        if (worker + i) % 2 == 0 or "seq" in got:  # written before append returned
            assert got == by_key[(worker, i)]
        else:  # queued for another thread to write: the fields, not yet chained
            assert got == {"event": "mixed", "worker": worker, "i": i}


def test_readers_see_every_record_appended_before_them(tmp_path: Path) -> None:
    """Reads queued by threads that did not write them are written before a reader
    (``records``, ``find``, a second ``AuditLog`` on the same file) looks."""
    path = tmp_path / "state" / "audit.jsonl"
    log = AuditLog(path)
    done: list[tuple[int, int]] = []
    stop = threading.Event()

    def work(worker: int) -> None:
        i = 0
        while not stop.is_set() and i < 400:
            log.append("read", durable=False, worker=worker, i=i)
            done.append((worker, i))
            i += 1

    def write() -> None:  # keeps a leader in fsync while the reads queue behind it
        i = 0
        while not stop.is_set() and i < 400:
            log.append("write", durable=True, i=i)
            i += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.002)
            before = list(done)
            present = set(_keys(AuditLog(path), "read"))
            assert [k for k in before if k not in present] == []
            if before:
                worker, i = before[-1]
                assert log.find("read", worker=worker, i=i) is not None
    finally:
        stop.set()
        for t in threads:
            t.join()
    records = _assert_unbroken(log)
    assert len([r for r in records if r["event"] == "read"]) == len(done)


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.jsonl"
    log = AuditLog(path)
    log.append("start", durable=True)
    count = 80
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIXED_WRITER, str(path), name, str(count)], env=_child_env()
        )
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=90) for p in procs] == [0, 0]
    records = _assert_unbroken(log)
    mixed = [r for r in records if r["event"] == "mixed"]
    assert len(mixed) == 2 * 3 * count  # reads included: written by the end of the process
    for name in ("a", "b"):
        for worker in range(3):
            mine = [r["i"] for r in mixed if r["proc"] == name and r["worker"] == worker]
            assert mine == list(range(count))


def test_reads_queued_at_exit_are_written(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        env=_child_env(),
    )
    assert proc.returncode == 0, proc.stderr
    before_exit = _acks(proc.stdout.split("EXIT\n", 1)[0])
    assert before_exit
    log = AuditLog(path)
    present = set(_keys(log, "read"))
    assert [k for k in before_exit if k not in present] == []
    assert log.verify().ok


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_inherit_a_held_writer(tmp_path: Path) -> None:
    """A fork taken while a thread of the parent is writing a batch: the child's own
    appends must not wait for that thread, which the child does not have."""
    log = AuditLog(tmp_path / "state" / "audit.jsonl")
    log.append("parent", durable=True)
    log._group.io.acquire()  # as a thread in the middle of a batch holds it
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit status says whether its append went through
            code = 1
            try:
                record = log.append("child", durable=True)
                code = 0 if record["seq"] == 2 and log.verify().ok else 1
            finally:
                os._exit(code)
    finally:
        log._group.io.release()
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the parent's writer lock")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [r["event"] for r in log.records()] == ["parent", "child"]
    assert log.append("parent-again", durable=True)["seq"] == 3
    assert log.verify().ok


def test_close_writes_what_is_queued_and_the_log_stays_usable(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "state" / "audit.jsonl")
    barrier = threading.Barrier(6)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(30):
            log.append("read", durable=False, worker=worker, i=i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]  # the file, no reader
    assert len(lines) == 6 * 30
    assert log.append("after-close", durable=True)["seq"] == 6 * 30 + 1
    assert len(_assert_unbroken(log)) == 6 * 30 + 1


# -- deferred reads (what a Port does by default) ----------------------------------------------


def _events_on_disk(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_bytes().splitlines()]


def test_deferred_reads_reach_the_file_without_a_flush(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", defer_reads=True)
    returned = log.append("auto-sent", durable=False, action="get-page", n=1)
    assert "seq" not in returned  # queued: the caller did not wait for the file
    for _ in range(500):  # the flusher writes it within milliseconds; bounded by count
        if _events_on_disk(log.path) == ["auto-sent"]:
            break
        time.sleep(0.01)
    assert _events_on_disk(log.path) == ["auto-sent"]
    assert log.verify().ok


def test_a_thread_deferring_a_full_batch_writes_it_itself(tmp_path: Path) -> None:
    """The deferring thread writes its own batch once DEFER_BATCH records are queued: no
    hand-off to the flusher thread, whose GIL contention cost the caller more."""
    from harbor_confluence.review.audit import DEFER_BATCH

    log = AuditLog(tmp_path / "audit.jsonl", defer_reads=True)
    for n in range(DEFER_BATCH - 1):
        log.append("auto-sent", durable=False, n=n)
    assert len(_events_on_disk(log.path)) < DEFER_BATCH  # still queued (or flushed early)
    log.append("auto-sent", durable=False, n=DEFER_BATCH - 1)
    lines = [json.loads(line) for line in log.path.read_bytes().splitlines()]
    assert [r["n"] for r in lines] == list(range(DEFER_BATCH))  # all, in order, at once
    assert log.verify().ok


def test_a_durable_append_writes_the_deferred_reads_before_it(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", defer_reads=True)
    for n in range(5):
        log.append("auto-sent", durable=False, n=n)
    record = log.append("auto-sending", action="create-page")  # durable: waits for the file
    lines = [json.loads(line) for line in log.path.read_bytes().splitlines()]
    assert [r["event"] for r in lines][-6:] == ["auto-sent"] * 5 + ["auto-sending"]
    assert [r.get("n") for r in lines[-6:-1]] == [0, 1, 2, 3, 4]  # in the order appended
    assert lines[-1]["seq"] == record["seq"] and log.verify().ok


def test_deferred_reads_queued_at_exit_are_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from harbor_confluence.review.audit import AuditLog\n"
        "log = AuditLog(Path(sys.argv[1]), defer_reads=True)\n"
        "for n in range(50):\n    log.append('auto-sent', durable=False, n=n)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert _events_on_disk(path) == ["auto-sent"] * 50
    assert AuditLog(path).verify().ok


def test_reads_on_an_event_loop_are_written_by_its_next_iteration(port: Any, home: Path) -> None:
    """On an event loop a read's record is queued for the loop's next iteration, which
    writes every record queued meanwhile at once: no flusher thread competes with the loop
    for the GIL, and a batch of reads shares one write.  Off a loop, a Port defers reads
    to the flusher thread."""
    import asyncio

    log = home / "audit.jsonl"

    async def reads() -> tuple[list[str], list[str]]:
        calls = [port.acall("get-page", {"path": {"id": "98305"}}) for _ in range(8)]
        assert all(r.ok for r in await asyncio.gather(*calls))
        # The gather's wake-up is scheduled after the write: the records are on disk.
        seen = _events_on_disk(log)
        one = await port.acall("get-page", {"path": {"id": "98305"}})
        assert one.ok
        queued = _events_on_disk(log)  # same iteration: queued, not written yet
        await asyncio.sleep(0)
        return seen, [*queued, "|", *_events_on_disk(log)]

    seen, after = asyncio.run(reads())
    assert seen.count("auto-sent") == 8
    cut = after.index("|")
    assert after[:cut].count("auto-sent") == 8  # the ninth waits for the next iteration
    assert after[cut + 1 :].count("auto-sent") == 9
    assert port.audit._group.flusher is None  # no thread was started for them
    assert port.audit.verify().ok
    assert port.audit.defer_reads is True  # the same port defers reads made off a loop
