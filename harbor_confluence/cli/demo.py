"""``harbor-confluence demo``: the simulator plus a short tour, in a throwaway state dir."""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from typing import Any

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import DEFAULT_EMAIL, Simulator

__all__ = ["run_demo"]


def _show(title: str, payload: Any, json_output: bool, log: list[dict[str, Any]]) -> None:
    log.append({"step": title, "result": payload})
    if not json_output:
        sys.stdout.write(f"\n== {title}\n{json.dumps(payload, indent=2, ensure_ascii=False)}\n")


def run_demo(json_output: bool = False) -> int:
    token = secrets.token_urlsafe(24)  # a fresh simulator credential, never printed
    log: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="harbor-demo-") as home,
        Simulator(email=DEFAULT_EMAIL, api_token=token) as sim,
    ):
        if not json_output:
            sys.stdout.write(
                f"Confluence Cloud simulator on {sim.url} (loopback); state in {home}\n"
            )
        port = Port.load(
            home=home,
            base_url=sim.url,
            credential=Credential.basic(DEFAULT_EMAIL, token, "demo"),
            requester="demo",
        )
        with port:
            infos = port.actions()
            log.append({"step": "actions", "result": [a.to_dict() for a in infos]})
            if not json_output:
                sys.stdout.write("\n== actions and their policy decisions\n")
                for a in infos:
                    sys.stdout.write(f"  {a.name:<14} {a.method:<5} {a.decision:<17} {a.route}\n")
            found = port.call("search-pages", {"query": {"limit": 3, "status": ["current"]}})
            _show("search-pages limit=3 (auto)", found.to_dict(), json_output, log)
            first = found.summary[0]["id"] if found.ok and found.summary else None
            if first is None:
                sys.stderr.write("demo: search-pages returned nothing\n")
                return 1
            page = port.call(
                "get-page", {"path": {"id": first}, "query": {"body-format": "storage"}}
            )
            _show(f"get-page {first} (auto)", page.to_dict(), json_output, log)
            held = port.call(
                "create-page",
                {
                    "body": {
                        "spaceId": page.summary["spaceId"],
                        "title": "Harbor rollout checklist",
                        "body": {"representation": "storage", "value": "<p>Reviewed.</p>"},
                    }
                },
            )
            _show("create-page (require_approval: nothing sent)", held.to_dict(), json_output, log)
            ticket = port.ticket(held.ticket or "")
            if ticket is not None:
                _show("the held request, as the operator sees it", ticket.to_dict(),
                      json_output, log)  # fmt: skip
            sent = sum(1 for e in sim.exchanges if e.method == "POST")
            _show("simulator saw POST requests", {"count": sent}, json_output, log)
    if json_output:
        sys.stdout.write(json.dumps(log, indent=2, ensure_ascii=False) + "\n")
    return 0 if sent == 0 else 1
