"""Which machine this process runs on, as a cluster names it.

The hostname alone does not tell cluster nodes apart: containers, and the network
namespaces of the multi-host test, often share one. A node's address does, and Ray
knows it for any process it started; outside Ray the address is the one this host's
name resolves to.
"""

from __future__ import annotations

import socket
import sys
from typing import Any


def node_address() -> str:
    ray = sys.modules.get("ray")  # only if this process already uses Ray: importing it takes seconds
    if ray is not None and ray.is_initialized():
        return ray.util.get_node_ip_address()
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def node_identity() -> dict[str, Any]:
    return {"address": node_address(), "hostname": socket.gethostname()}


def node_label(identity: dict[str, Any]) -> str:
    return f"{identity['address']} ({identity['hostname']})"
