"""The container's health check: exit 0 when the gateway on this host is ready.

``GET /health/ready`` on 127.0.0.1 (port ``GATEWAY__SERVER__PORT``, default 8280, or the
first argument) over HTTP, else over HTTPS (a gateway with ``[server] cert_file``; its
certificate is not verified: this is the container's own port). Standard library only.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def ready(port: int, timeout: float = 4.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for scheme in ("http", "https"):
        if scheme == "https":
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}),
                urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))  # noqa: S323
        try:
            with opener.open(f"{scheme}://127.0.0.1:{port}/health/ready", timeout=timeout) as resp:
                return resp.status == 200
        except urllib.error.HTTPError:
            return False  # it answers: not ready (503)
        except (OSError, ValueError):
            continue  # not this scheme (or not up)
    return False


if __name__ == "__main__":
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GATEWAY__SERVER__PORT",
                                                                       "8280"))
    sys.exit(0 if ready(port) else 1)
