"""A Confluence Cloud simulator: the other side of the wire, written from Atlassian's documents.

Standard library only, and nothing imported from the rest of ``harbor_confluence``, so the
runner and the simulator can never share a mistake.

    with Simulator() as sim:
        httpx.get(f"{sim.url}/wiki/api/v2/pages", auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN))

Demo credentials (loopback, made-up data): email ``sim@example.com``, API token
``harbor-sim-api-token`` (HTTP Basic ``email:token``), OAuth access token
``harbor-sim-access-token`` (``Authorization: Bearer ...``). ``serve()`` reads overrides
from HARBOR_SIM_EMAIL, HARBOR_SIM_API_TOKEN and HARBOR_SIM_ACCESS_TOKEN.
"""

from __future__ import annotations

from .defaults import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    ENV_ACCESS_TOKEN,
    ENV_API_TOKEN,
    ENV_EMAIL,
)
from .exchange import Exchange
from .server import MAX_BODY_BYTES, Simulator, build_router, serve

__all__ = [
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_API_TOKEN",
    "DEFAULT_EMAIL",
    "ENV_ACCESS_TOKEN",
    "ENV_API_TOKEN",
    "ENV_EMAIL",
    "MAX_BODY_BYTES",
    "Exchange",
    "Simulator",
    "build_router",
    "serve",
]
