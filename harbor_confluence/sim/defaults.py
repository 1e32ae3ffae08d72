"""Demo credentials of the simulator, re-exported by ``harbor_confluence.sim``.

They are public on purpose: the simulator only listens on loopback by default and holds
made-up data. Override them with the environment variables below.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_API_TOKEN",
    "DEFAULT_EMAIL",
    "ENV_ACCESS_TOKEN",
    "ENV_API_TOKEN",
    "ENV_EMAIL",
]

DEFAULT_EMAIL = "sim@example.com"
DEFAULT_API_TOKEN = "harbor-sim-api-token"  # noqa: S105 - documented demo value
DEFAULT_ACCESS_TOKEN = "harbor-sim-access-token"  # noqa: S105 - documented demo value

ENV_EMAIL = "HARBOR_SIM_EMAIL"
ENV_API_TOKEN = "HARBOR_SIM_API_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_ACCESS_TOKEN = "HARBOR_SIM_ACCESS_TOKEN"  # noqa: S105 - a variable name, not a secret
