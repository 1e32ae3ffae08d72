"""9. Lossless editing: a 1 MB page to Markdown and back, and the Markdown view's size.

The page is the storage corpus (``tests/storage_corpus/``, written from Atlassian's
storage-format reference: macros, layouts, tables, links, mentions, entities ...) repeated
to just over 1,000,000 bytes, about 8,600 blocks.  Measured in this process, as the runner
does the work:

- to Markdown: ``editing.to_markdown(verify=False)``, what ``get-page`` with
  ``body-format: markdown`` runs (and ``update-page`` with a Markdown body runs again
  when its process has not seen the page);
- an edit back: one paragraph changed in the view, then ``apply_markdown(verify=False)``
  against the stored body, recomputing the view (cold) as a fresh process must; the
  result is checked byte for byte (only that paragraph's storage differs);
- the target, at most 1 s: the two together;
- beside them, not judged: the same view with ``verify=True`` (every block proven to
  render back, 4-5x the time: the runtime proves only the blocks an edit replaces), the
  review of the held update (``review_diff``), and the runner end to end against the
  simulator (a separate process): ``get-page`` as Markdown, and ``Port.prepare`` of a
  Markdown ``update-page`` and of an ``edit-page`` section edit (the read of the 1 MB
  page, the edit, the review and the policy; nothing is sent or held).

And the Markdown view's size: every page the simulator seeds, read through ``get-page``
whole as storage and as Markdown; the share is Markdown bytes over storage bytes
(target: at most 60%).
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Context, Row, Stats, fmt_time, headroom, make_port
from bench.simproc import SimProcess

NUMBER = 9
TITLE = "Lossless editing"
TARGET_SECONDS = 1.0
TARGET_SHARE = 0.60
CORPUS = ROOT / "tests" / "storage_corpus"
OLD, NEW = "Every second Tuesday", "Every Wednesday"


def megabyte_page() -> str:
    docs = [p.read_text(encoding="utf-8") for p in sorted(Path(CORPUS).glob("*.xml"))]
    parts: list[str] = []
    size = 0
    while size < 1_000_000:
        for doc in docs:
            parts.append(doc)
            size += len(doc.encode())
    return "".join(parts)


def _timed(fn: Any) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _stats_row(key: str, label: str, samples: list[float], comparison: str = "") -> Row:
    s = Stats.of(samples)
    return Row(NUMBER, key, label, value=s.median, unit="s", spread=(s.p10, s.p90),
               comparison=comparison, details={"samples": s.samples})  # fmt: skip


def _conversion(ctx: Context, page: str) -> list[Row]:
    from harbor_confluence.editing import apply_markdown, review_diff, to_markdown

    reps = ctx.settings.reps(7, 2)
    to_md: list[float] = []
    back: list[float] = []
    review: list[float] = []
    warm = (CORPUS / "31_release_notes.xml").read_text(encoding="utf-8")
    apply_markdown(warm, None, to_markdown(warm, verify=False).text, verify=False)  # imports
    blocks = 0
    for _ in range(reps):
        seconds, view = _timed(lambda: to_markdown(page, verify=False))
        to_md.append(seconds)
        blocks = len(view.blocks)
        edited = view.text.replace(OLD, NEW, 1)
        seconds, result = _timed(lambda e=edited: apply_markdown(page, None, e, verify=False))
        back.append(seconds)
        if result.storage != page.replace(OLD, NEW, 1) or result.changed_blocks != 1:
            raise RuntimeError("the edit back changed more than its paragraph")
        seconds, _ = _timed(lambda r=result, v=view: review_diff(page, r.storage, old_view=v))
        review.append(seconds)
    verified = [_timed(lambda: to_markdown(page))[0] for _ in range(ctx.settings.reps(3, 1))]
    total = [a + b for a, b in zip(to_md, back, strict=True)]
    s = Stats.of(total)
    met = s.median <= TARGET_SECONDS
    size = len(page.encode())
    ctx.log(
        f"    1 MB page: to Markdown {fmt_time(statistics.median(to_md))}, "
        f"edit back {fmt_time(statistics.median(back))}, total {fmt_time(s.median)}"
    )
    return [
        _stats_row("s9.to-markdown", "1 MB page -> Markdown view (get-page body-format markdown)",
                   to_md, f"{size:,} B of storage, {blocks:,} blocks; verify=False"),
        _stats_row("s9.apply-edit", "1 MB page: one paragraph edited in Markdown, applied back",
                   back, "apply_markdown(verify=False), view recomputed (cold); only that "
                   "paragraph's bytes differ (checked)"),
        Row(NUMBER, "s9.convert-and-apply", "1 MB page: to Markdown + one edit applied back",
            status="met" if met else "missed", value=s.median, unit="s",
            spread=(s.p10, s.p90),
            comparison=f"{fmt_time(statistics.median(to_md))} + "
                       f"{fmt_time(statistics.median(back))}, {reps} reps",
            target=f"<= {TARGET_SECONDS:.0f} s on this machine",
            verdict=(f"met, {fmt_time(s.median)} ({headroom(s.median, TARGET_SECONDS)})"
                     if met else f"missed: {fmt_time(s.median)}"),
            details={"samples": s.samples}),
        _stats_row("s9.verified-view", "1 MB page -> Markdown, verify=True (diagnostic, not "
                   "the runtime path)", verified,
                   f"{statistics.median(verified) / statistics.median(to_md):.1f}x the "
                   "unverified view: every block re-rendered and compared"),
        _stats_row("s9.review", "1 MB page: review of the held edit (review_diff)", review,
                   "block and word diff, counts before/after, storage diff per block"),
    ]  # fmt: skip


def _through_runner(ctx: Context, sim: SimProcess, page: str) -> list[Row]:
    from harbor_confluence.pipeline import bodyview
    from harbor_confluence.pipeline.policy import policy_from_data

    everything = policy_from_data({"rules": [{"name": "all", "decision": "auto"}]}, "bench")
    seed = make_port(sim.url, policy=everything)
    body = {"representation": "storage", "value": page}
    made = seed.call("create-page", {"body": {"spaceId": "65538", "title": "1 MB", "body": body}})
    if not made.ok:
        raise RuntimeError(f"could not create the 1 MB page: {made.error}")
    page_id = made.summary["id"]
    port = make_port(sim.url)  # the default policy: writes would be held
    read_md = {"path": {"id": page_id},
               "query": {"body-format": "markdown", "body-limit": 2_000_000}}  # fmt: skip
    reps = ctx.settings.reps(5, 1)
    reads: list[float] = []
    md_update: list[float] = []
    section_edit: list[float] = []
    for _ in range(reps):
        bodyview._VIEWS.clear()  # cold, as a fresh process
        seconds, got = _timed(lambda: port.call("get-page", read_md))
        reads.append(seconds)
        edited = got.summary["body"].replace(OLD, NEW, 1)
        update = {"path": {"id": page_id},
                  "body": {"body": {"representation": "markdown", "value": edited},
                           "expected_version": got.summary["version"]}}  # fmt: skip
        bodyview._VIEWS.clear()
        seconds, (prepared, _) = _timed(lambda u=update: port.prepare("update-page", u))
        md_update.append(seconds)
        if prepared.review.get("summary", {}).get("blocks_changed") != 1:
            raise RuntimeError(f"unexpected review: {prepared.review.get('summary')}")
        edit = {"path": {"id": page_id},
                "body": {"op": "append", "content": "One more *paragraph*."}}  # fmt: skip
        seconds, _ = _timed(lambda e=edit: port.prepare("edit-page", e))
        section_edit.append(seconds)
    return [
        _stats_row("s9.runner-get-markdown", "runner: get-page of the 1 MB page as Markdown",
                   reads, "HTTP read of the storage (loopback simulator), conversion, summary"),
        _stats_row("s9.runner-md-update", "runner: prepare a Markdown update-page of it",
                   md_update, "read, apply_markdown (cold view), review, policy; not sent"),
        _stats_row("s9.runner-edit-page", "runner: prepare an edit-page (append) of it",
                   section_edit, "read, targeted edit on storage, review, policy; not sent"),
    ]  # fmt: skip


def _share(sim: SimProcess) -> Row:
    port = make_port(sim.url)
    ids = [item["id"] for item in port.paginate("search-pages", {"query": {"limit": 100}}).items()]
    storage_bytes = markdown_bytes = 0
    per_page: dict[str, list[int]] = {}
    for page_id in ids:
        sizes = []
        for fmt in ("storage", "markdown"):
            query = {"body-format": fmt, "body-limit": 2_000_000}
            got = port.call("get-page", {"path": {"id": page_id}, "query": query})
            sizes.append(len(str(got.summary.get("body", "")).encode()))
        storage_bytes += sizes[0]
        markdown_bytes += sizes[1]
        per_page[page_id] = sizes
    share = markdown_bytes / storage_bytes
    met = share <= TARGET_SHARE
    return Row(
        NUMBER, "s9.markdown-share", "Markdown view of the simulator's seeded pages / storage",
        status="met" if met else "missed", value=share * 100, unit="%",
        comparison=f"{markdown_bytes:,} B of Markdown for {storage_bytes:,} B of storage, "
                   f"{len(ids)} pages, read through get-page",
        target=f"<= {TARGET_SHARE:.0%} of the storage bytes",
        verdict=(f"met, {share:.1%} ({headroom(share, TARGET_SHARE)})" if met
                 else f"missed: {share:.1%}"),
        details={"pages": per_page},
    )  # fmt: skip


def run(ctx: Context) -> list[Row]:
    page = megabyte_page()
    rows = _conversion(ctx, page)
    with SimProcess() as sim:
        rows.append(_share(sim))
        rows.extend(_through_runner(ctx, sim, page))
    return rows
