"""``GET /metrics``: the outbound queue in Prometheus text (outside ``/admin``, with the
same authentication and the ``admin`` permission): queue depth per connector and state,
changes still in the outboxes (``state="outbox"``), deliveries and failures,
commit-to-delivery lag histogram (counters of every process
sharing the queue, kept in its database)."""

from __future__ import annotations

from aiohttp import web

from ..outbound import queue
from .http import admin_errors
from .outbound import service


async def metrics(request: web.Request) -> web.Response:
    return await admin_errors(request, _metrics)


async def _metrics(request: web.Request) -> web.Response:
    outbound = service(request)
    lines = ["# HELP gateway_outbound_queue Changes not delivered yet, by connector and state "
             "(outbox: committed, not fanned out to deliveries yet)",
             "# TYPE gateway_outbound_queue gauge"]
    counts, _oldest = await outbound.backlog()
    for name in outbound.connectors:
        counts.setdefault(name, {}).setdefault("outbox", 0)
    for name, per in sorted(counts.items()):
        lines += [f'gateway_outbound_queue{{connector="{name}",state="{state}"}} {n}'
                  for state, n in sorted(per.items())]
    by_metric: dict[str, dict[str, dict[str, float]]] = {}
    for name, metric, label, value in await outbound.runner.read(queue.counts):
        by_metric.setdefault(metric, {}).setdefault(name, {})[label] = value
    lines += ["# HELP gateway_outbound_deliveries_total Deliveries made (all processes)",
              "# TYPE gateway_outbound_deliveries_total counter"]
    for name, per in sorted(by_metric.get("delivered", {}).items()):
        lines += [f'gateway_outbound_deliveries_total{{connector="{name}",outcome="{o}"}} '
                  f'{n:.0f}' for o, n in sorted(per.items())]
    lines += ["# HELP gateway_outbound_failures_total Failed delivery attempts (all processes)",
              "# TYPE gateway_outbound_failures_total counter"]
    for name, per in sorted(by_metric.get("failures", {}).items()):
        lines += [f'gateway_outbound_failures_total{{connector="{name}",kind="{k}"}} {n:.0f}'
                  for k, n in sorted(per.items())]
    lines += ["# HELP gateway_outbound_lag_seconds From commit to delivery",
              "# TYPE gateway_outbound_lag_seconds histogram"]
    for name, per in sorted(by_metric.get("lag_bucket", {}).items()):
        running = 0.0
        for bound in (*(f"{b:g}" for b in queue.LAG_BUCKETS), "+Inf"):
            running += per.get(bound, 0.0)
            lines.append(f'gateway_outbound_lag_seconds_bucket{{connector="{name}",'
                         f'le="{bound}"}} {running:.0f}')
        lag_sum = by_metric.get("lag_sum", {}).get(name, {}).get("", 0.0)
        lag_count = by_metric.get("lag_count", {}).get(name, {}).get("", 0.0)
        lines.append(f'gateway_outbound_lag_seconds_sum{{connector="{name}"}} {lag_sum:.6f}')
        lines.append(f'gateway_outbound_lag_seconds_count{{connector="{name}"}} '
                     f'{lag_count:.0f}')
    return web.Response(text="\n".join(lines) + "\n",
                        content_type="text/plain", charset="utf-8")
