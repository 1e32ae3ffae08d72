"""6. Context economy: bytes an agent reads.

Raw = the bytes Confluence (the simulator) sends for the exact request the runner
builds; summary = ``Result.to_json()``, what the CLI and the Python API hand an agent.
Checked, not assumed: every id, title, status, version, space, parent, web link of the
raw response and the next cursor are present in the summary. Alongside, what
mcp-atlassian's equivalent tool returns as text, and the size of the full tool list in
both of harbor's shapes (``harbor_confluence.tools``) against mcp-atlassian's
``tools/list`` — all as compact UTF-8 JSON.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from bench.common import API_TOKEN, EMAIL, PAGE_ID, Context, Row, fmt_bytes, make_port, skipped
from bench.mcpclient import mcp_atlassian_spec, open_session, result_text, tools_bytes
from bench.simproc import SimProcess

NUMBER = 6
TITLE = "Context economy"
TARGET_SHARE = 0.10
SEARCH = {"query": {"body-format": "storage", "limit": 25}}
GET_BODY = {"path": {"id": PAGE_ID}, "query": {"body-format": "storage"}}
GET_META = {"path": {"id": PAGE_ID}}
MCP_TOOLS = {
    "search-pages": ("confluence_search", {"query": "type = page", "limit": 25}),
    "get-page": ("confluence_get_page", {"page_id": PAGE_ID}),
}

# raw field -> summary field that must carry it
KEPT = {
    "id": "id",
    "title": "title",
    "status": "status",
    "version.number": "version",
    "spaceId": "spaceId",
    "parentId": "parentId",
    "_links.webui": "webui",
}


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _missing(raw: Any, summary: Any, result: Any) -> list[str]:
    """Fields of the raw response that the summary lost (empty when all are kept)."""
    lost: list[str] = []
    raw_items = raw.get("results", [raw])
    sum_items = summary if isinstance(summary, list) else [summary]
    if len(raw_items) != len(sum_items):
        lost.append(f"items: {len(raw_items)} raw vs {len(sum_items)} summarised")
    for r, s in zip(raw_items, sum_items, strict=False):
        for raw_key, sum_key in KEPT.items():
            value = _dig(r, raw_key)
            if value is not None and (not isinstance(s, dict) or s.get(sum_key) != value):
                lost.append(f"{raw_key} of item {r.get('id')}")
    if _dig(raw, "_links.next") and not result.next_cursor:
        lost.append("next cursor")
    return lost


def _breakdown(data: Any) -> dict[str, int]:
    """Bytes per top-level field (per item field for listings), to explain a ratio."""
    items = data["results"] if isinstance(data, dict) and "results" in data else [data]
    out: dict[str, int] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
            out[key] = out.get(key, 0) + size + len(key) + 4
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _per_item(raw: Any, summary: Any, summary_bytes: int) -> dict[str, Any]:
    """For a listing: what each item costs on both sides, and the body size at which the
    summary would be 10% of the raw response (the summary's cost does not grow with it)."""
    if not (isinstance(raw, dict) and isinstance(raw.get("results"), list) and raw["results"]):
        return {}
    items = raw["results"]
    enc = lambda v: len(json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode())  # noqa: E731
    body = sum(enc(i.get("body", {})) for i in items) / len(items)
    whole = sum(enc(i) for i in items) / len(items)
    per_summary = summary_bytes / len(items)
    return {
        "items": len(items),
        "raw_bytes_per_item": round(whole),
        "raw_body_bytes_per_item": round(body),
        "summary_bytes_per_item": round(per_summary),
        "body_bytes_per_item_for_10_percent": round(
            max(0.0, per_summary / TARGET_SHARE - (whole - body))
        ),
    }


def _write_profile(ctx: Context, name: str, report: dict[str, Any]) -> str:
    path = ctx.results_dir / f"profile-s6-{name}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return str(path.relative_to(ctx.results_dir.parent.parent))


async def _mcp(ctx: Context, sim: SimProcess) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ctx.mcp_atlassian is None:
        out["error"] = "mcp-atlassian is not installed: run `bash bench/run.sh`"
        return out
    try:
        async with open_session(mcp_atlassian_spec(ctx.mcp_atlassian, sim.base_url)) as s:
            out["tools"] = len(s.tools)
            out["tools_bytes"] = tools_bytes(s.tools)
            for op, (tool, args) in MCP_TOOLS.items():
                try:
                    out[op] = len(result_text(await s.call(tool, args)).encode())
                except Exception as exc:
                    out[f"{op}_error"] = str(exc)[:300]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    with SimProcess() as sim:
        port = make_port(sim.url)
        client = httpx.Client(auth=httpx.BasicAuth(EMAIL, API_TOKEN))
        mcp = asyncio.run(_mcp(ctx, sim))
        for op, name, data in (
            ("search-pages", "search-pages", SEARCH),
            ("get-page", "get-page", GET_BODY),
            ("get-page (no body)", "get-page", GET_META),
        ):
            prepared = port.prepare(name, data)[0]
            raw_bytes = client.get(prepared.url, headers={"Accept": "application/json"}).content
            raw = json.loads(raw_bytes)
            result = port.call(name, data)
            summary_json = result.to_json()
            summary_bytes = len(summary_json.encode())
            share = summary_bytes / len(raw_bytes)
            lost = _missing(raw, result.summary, result)
            met = share <= TARGET_SHARE and not lost
            profile = None
            slug = op.replace(" ", "-").replace("(", "").replace(")", "")
            if not met:
                profile = _write_profile(
                    ctx,
                    slug,
                    {
                        "request": prepared.url.replace(sim.url, ""),
                        "raw_bytes": len(raw_bytes),
                        "summary_bytes": summary_bytes,
                        "raw_bytes_by_field": _breakdown(raw),
                        "summary_bytes_by_field": _breakdown(
                            {"results": result.summary}
                            if isinstance(result.summary, list)
                            else result.summary
                        ),
                        "summary": json.loads(summary_json),
                        **_per_item(raw, result.summary, summary_bytes),
                    },
                )
            peer = mcp.get(op) if op != "get-page (no body)" else None
            peer_text = f"; mcp-atlassian's tool result: {fmt_bytes(peer)}" if peer else ""
            verdict = (
                f"met, {share:.1%} of raw ({TARGET_SHARE - share:.1%} under)"
                if met
                else f"missed: {share:.1%} of raw"
                + (f"; lost {', '.join(lost[:3])}" if lost else "")
            )
            rows.append(
                Row(
                    NUMBER,
                    f"s6.{slug}",
                    f"{op}: json_summary vs raw response",
                    status="met" if met else "missed",
                    value=summary_bytes,
                    unit="B",
                    ratio=share,
                    comparison=f"{fmt_bytes(summary_bytes)} of {fmt_bytes(len(raw_bytes))}"
                    f" raw = {share:.1%}{peer_text}",
                    target="≤ 10% of raw, all key fields kept",
                    verdict=verdict
                    + (
                        ""
                        if lost
                        else "; ids, titles, status, version, space, parent, links, cursor kept"
                        if "results" in raw
                        else "; id, title, status, version, space, parent, link kept"
                    ),
                    profile=profile,
                    details={
                        "raw_bytes": len(raw_bytes),
                        "summary_bytes": summary_bytes,
                        "lost": lost,
                        "mcp_atlassian_bytes": peer,
                    },
                )
            )
        rows.extend(_tool_lists(port, mcp))
        port.close()
        client.close()
    return rows


def _tool_lists(port: Any, mcp: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    peer = mcp.get("tools_bytes")
    if peer:
        rows.append(
            Row(
                NUMBER,
                "s6.tools.mcp-atlassian",
                "mcp-atlassian tools/list",
                value=peer,
                unit="B",
                comparison=f"{mcp['tools']} tools",
            )
        )
    else:
        rows.append(
            skipped(
                NUMBER,
                "s6.tools.mcp-atlassian",
                "mcp-atlassian tools/list",
                mcp.get("error", "not measured"),
            )
        )
    try:
        from harbor_confluence import tools as toolmod
    except ImportError:
        rows.append(
            skipped(
                NUMBER,
                "s6.tools.harbor",
                "harbor tool lists",
                "harbor_confluence.tools does not exist yet (issue 6)",
            )
        )
        return rows
    targets = {"per-action": 30_000, "compact": 3_000}  # issue 6's targets
    for shape, limit in targets.items():
        try:
            defs = toolmod.tools(port, "mcp", shape=shape)
            size = toolmod.encoded_size(defs)
        except Exception as exc:
            rows.append(
                skipped(
                    NUMBER,
                    f"s6.tools.{shape}",
                    f"harbor tools ({shape})",
                    f"{type(exc).__name__}: {exc}"[:300],
                )
            )
            continue
        met = size <= limit
        versus = f"; {size / peer:.0%} of mcp-atlassian's {peer:,} B" if peer else ""
        rows.append(
            Row(
                NUMBER,
                f"s6.tools.{shape}",
                f"harbor tool list, {shape} shape (MCP format)",
                status="met" if met else "missed",
                value=size,
                unit="B",
                ratio=size / peer if peer else None,
                comparison=f"{len(defs)} tools, {len(port.manifest.actions)} actions{versus}",
                target=f"≤ {limit:,} B (issue 6)",
                verdict=(
                    f"met, {(limit - size) / limit:.0%} headroom"
                    if met
                    else f"missed by {size - limit:,} B"
                ),
            )
        )
    return rows
