"""``GET /metrics`` in the Prometheus text format 0.0.4 (outside ``/admin``, with the
same authentication and the ``admin`` permission):

- the outbound queue: queue depth per connector and state, changes still in the outboxes
  (``state="outbox"``), deliveries and failures, commit-to-delivery lag histogram
  (counters of every process sharing the queue, kept in its database);
- the gateway's own (``gateway.metrics``): HTTP requests and their time by protocol,
  authentication outcomes, user store calls by domain, summed over every worker of
  ``gateway serve``; and each worker's process metrics.

Every label value is escaped (``gateway.metrics.escape``)."""

from __future__ import annotations

from aiohttp import web

from .. import metrics as gateway_metrics
from ..outbound import queue
from .http import admin_errors
from .outbound import service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
        lines += [f'gateway_outbound_queue{{{_labels(name, state=state)}}} {n}'
                  for state, n in sorted(per.items())]
    by_metric: dict[str, dict[str, dict[str, float]]] = {}
    for name, metric, label, value in await outbound.runner.read(queue.counts):
        by_metric.setdefault(metric, {}).setdefault(name, {})[label] = value
    lines += ["# HELP gateway_outbound_deliveries_total Deliveries made (all processes)",
              "# TYPE gateway_outbound_deliveries_total counter"]
    for name, per in sorted(by_metric.get("delivered", {}).items()):
        lines += [f'gateway_outbound_deliveries_total{{{_labels(name, outcome=o)}}} {n:.0f}'
                  for o, n in sorted(per.items())]
    lines += ["# HELP gateway_outbound_failures_total Failed delivery attempts (all processes)",
              "# TYPE gateway_outbound_failures_total counter"]
    for name, per in sorted(by_metric.get("failures", {}).items()):
        lines += [f'gateway_outbound_failures_total{{{_labels(name, kind=k)}}} {n:.0f}'
                  for k, n in sorted(per.items())]
    lines += ["# HELP gateway_outbound_lag_seconds From commit to delivery",
              "# TYPE gateway_outbound_lag_seconds histogram"]
    for name, per in sorted(by_metric.get("lag_bucket", {}).items()):
        running = 0.0
        for bound in (*(f"{b:g}" for b in queue.LAG_BUCKETS), "+Inf"):
            running += per.get(bound, 0.0)
            lines.append(f'gateway_outbound_lag_seconds_bucket{{{_labels(name, le=bound)}}} '
                         f'{running:.0f}')
        lag_sum = by_metric.get("lag_sum", {}).get(name, {}).get("", 0.0)
        lag_count = by_metric.get("lag_count", {}).get(name, {}).get("", 0.0)
        lines.append(f'gateway_outbound_lag_seconds_sum{{{_labels(name)}}} {lag_sum:.6f}')
        lines.append(f'gateway_outbound_lag_seconds_count{{{_labels(name)}}} {lag_count:.0f}')
    lines += gateway_metrics.exposition()
    return web.Response(body=("\n".join(lines) + "\n").encode(),
                        headers={"Content-Type": CONTENT_TYPE})


def _labels(connector: str, **more: str) -> str:
    return gateway_metrics.labels(("connector", *more), (connector, *more.values()))
