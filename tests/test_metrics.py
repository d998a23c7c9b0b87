"""``GET /metrics``: the Prometheus text format (parsed with ``prometheus_client``'s parser),
requests counted per protocol, authentication outcomes, user store calls, process
metrics, escaped label values, and with ``gateway serve --workers 2`` the sum over both
workers (a worker killed with ``kill -9`` keeps its counts in the sum)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import pytest
from conftest import ADMIN, basic
from prometheus_client.parser import text_string_to_metric_families
from test_cli import Server, clean_env, sqlite_url, write_config

from gateway import metrics
from gateway.app import create_app

BOUND = 60  # seconds: a guard against a hang, no expectation of speed


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by name and labels (the parser's reading of it)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def total(found: dict, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


async def scrape(gw, auth=ADMIN) -> dict:
    resp = await gw.get("/metrics", headers=auth)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await resp.text())


async def test_requests_auth_and_stores_are_counted(gateway):
    before = await scrape(gateway)
    calls = {"scim2": ["/scim2/Users", "/scim2/Groups", "/scim2/ServiceProviderConfig"],
             "scim11": ["/wso2/scim/Users"],
             "soap": ["/services/RemoteUserStoreManagerService?wsdl"],
             "jit": ["/jit/nosuch"],
             "admin": ["/admin/outbound/connectors"]}
    for paths in calls.values():
        for path in paths:
            resp = await gateway.get(path, headers=ADMIN)
            await resp.read()
    resp = await gateway.get("/scim2/Users", headers=basic("test-admin", "wrong"))
    assert resp.status == 401
    resp = await gateway.get("/scim2/Users")  # no credentials at all
    assert resp.status == 401
    after = await scrape(gateway)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    for protocol, paths in calls.items():
        extra = 2 if protocol == "scim2" else 0  # the two refused ones
        assert delta("gateway_http_requests_total", protocol=protocol) == len(paths) + extra
        assert delta("gateway_http_request_duration_seconds_count",
                     protocol=protocol) == len(paths) + extra
    assert delta("gateway_http_requests_total", protocol="scim2", method="GET",
                 status="2xx") == 3
    assert delta("gateway_http_requests_total", protocol="scim2", status="4xx") == 2
    # the first scrape is counted by the second one
    assert delta("gateway_http_requests_total", protocol="http", method="GET",
                 status="2xx") == 1
    # the histogram is cumulative, and its +Inf bucket is its count
    assert delta("gateway_http_request_duration_seconds_bucket", protocol="scim2",
                 le="+Inf") == 5
    assert delta("gateway_auth_total", scheme="basic", outcome="failure") == 1
    assert delta("gateway_auth_total", scheme="none", outcome="failure") == 1
    assert delta("gateway_auth_total", outcome="success") >= 4  # those that ask for it
    # the listing read the store: its calls are timed per domain
    assert delta("gateway_userstore_operation_duration_seconds_count", domain="PRIMARY",
                 operation="search_users") >= 2
    # the process, from /proc
    pid = str(os.getpid())
    assert total(after, "process_resident_memory_bytes", pid=pid) > 1_000_000
    assert total(after, "process_open_fds", pid=pid) > 3
    assert total(after, "process_cpu_seconds_total", pid=pid) > 0
    assert abs(total(after, "process_start_time_seconds", pid=pid) - time.time()) < 86400 * 7
    # the outbound metrics are still there, under their names
    text = await (await gateway.get("/metrics", headers=ADMIN)).text()
    for name in ("gateway_outbound_queue gauge", "gateway_outbound_deliveries_total counter",
                 "gateway_outbound_lag_seconds histogram"):
        assert f"# TYPE {name}\n" in text


async def test_metrics_need_the_admin_permission(gateway):
    from conftest import READER

    assert (await gateway.get("/metrics")).status == 401
    assert (await gateway.get("/metrics", headers=READER)).status == 403


async def test_a_store_error_is_counted(aiohttp_client, make_config, admin_env):
    gw = await aiohttp_client(create_app(await make_config()))
    before = await scrape(gw)
    body = {"userName": "twice"}
    for _ in range(2):
        resp = await gw.post("/scim2/Users", json=body, headers=ADMIN)
        await resp.read()
    assert resp.status == 409
    after = await scrape(gw)
    created = total(after, "gateway_userstore_operation_duration_seconds_count",
                    operation="create_user") - total(
        before, "gateway_userstore_operation_duration_seconds_count", operation="create_user")
    assert created >= 1
    labels = {"domain": "PRIMARY", "operation": "create_user", "error": "Conflict"}
    errors = total(after, "gateway_userstore_errors_total", **labels) - total(
        before, "gateway_userstore_errors_total", **labels)
    assert errors == 1  # the store refused the second one (its userName is taken)


def test_label_values_are_escaped():
    assert metrics.escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    value = 'q"uo\\te\nline'
    text = f"# TYPE m counter\nm_total{{{metrics.labels(('x',), [value])}}} 1\n"
    assert samples(text) == {("m_total", frozenset({("x", value)})): 1.0}


def test_a_snapshot_round_trips(tmp_path, monkeypatch):
    """Two workers' snapshots and the live values add up; a dead worker's stays."""
    snaps = metrics.Snapshots(tmp_path)
    monkeypatch.setattr(metrics, "SNAPSHOTS", snaps)
    metrics.request_done("scim2", "GET", 200, 0.003)
    own = metrics.HTTP_REQUESTS.values[("scim2", "GET", "2xx")]
    other = metrics.snapshot()
    other["pid"], other["started"] = 1, "no such start"  # a worker that is gone
    (tmp_path / "w-1-0.json").write_text(json.dumps(other))
    totals, processes = metrics.collect()
    assert totals["gateway_http_requests_total"][("scim2", "GET", "2xx")] == 2 * own
    assert list(processes) == [os.getpid()]  # the dead one's process metrics are dropped
    assert snaps.path.exists()  # written before the scrape answered
    found = samples("\n".join(metrics.exposition()) + "\n")
    assert total(found, "gateway_http_requests_total", protocol="scim2", method="GET",
                 status="2xx") == 2 * own
    count = total(found, "gateway_http_request_duration_seconds_count", protocol="scim2")
    assert total(found, "gateway_http_request_duration_seconds_bucket", protocol="scim2",
                 le="+Inf") == count


# --- gateway serve --workers 2 -------------------------------------------------------------

OPS = ("ops", "ops-secret")
WEIRD = 'down"stream\nline\\2'  # a connector's name: quote, new line, backslash

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port: int, path: str, auth: dict) -> tuple[int, str]:
    """One request on a connection of its own (SO_REUSEPORT spreads them)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=auth)
    try:
        with _HTTP.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape_process(port: int) -> dict:
    status, text = get(port, "/metrics", basic(*OPS))
    assert status == 200, text
    return samples(text)


def scim2_total(found: dict) -> float:
    return total(found, "gateway_http_requests_total", protocol="scim2")


def settled(port: int) -> float:
    """The scim2 total once every worker's snapshot has caught up: the same in several
    scrapes in a row (a worker writes its own every second)."""
    deadline = time.monotonic() + BOUND
    seen: list[float] = []
    while time.monotonic() < deadline:
        seen = [*seen[-4:], scim2_total(scrape_process(port))]
        if len(seen) == 5 and len(set(seen)) == 1:
            return seen[0]
        time.sleep(0.3)
    raise AssertionError(f"the scrapes never agreed: {seen}")


def workers_of(server: Server) -> list[int]:
    """The workers listening (each says so; the outbound dispatcher is a child too)."""
    return [int(p) for p in re.findall(r"^gateway: worker (\d+) listening on",
                                       server.output(), re.M)]


@pytest.mark.timeout(180)
def test_workers_add_up_and_a_dead_one_stays_counted(tmp_path):
    extra = (f'\n[[clients]]\nname = "{OPS[0]}"\nsecret = "{OPS[1]}"\npermissions = ["*"]\n'
             '\n[[outbound.connectors]]\nname = "down\\"stream\\nline\\\\2"\ntype = "scim2"\n'
             'url = "http://127.0.0.1:9/"\n')
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")}, extra)
    with Server(tmp_path, ["--config", str(cfg), "--workers", "2"], clean_env(),
                "metrics") as server:
        workers = workers_of(server)
        assert len(workers) == 2
        base = settled(server.port)
        n = 40
        for _ in range(n):
            status, body = get(server.port, "/scim2/Users?count=1", basic(*OPS))
            assert status == 200, body
        served_by = {int(m) for m in re.findall(
            r"^\S+ INFO (\d+) gateway\.access .* GET /scim2/Users\?count=1 ", server.output(),
            re.M)}
        assert set(workers) <= served_by, (served_by, workers)
        # whichever worker answers, the total is the sum over both: the other workers'
        # counts are those of their last snapshot (at most a second old), so once one
        # scrape has them all, every later one does (each scrape writes the answering
        # worker's snapshot first)
        deadline = time.monotonic() + BOUND
        while scim2_total(scrape_process(server.port)) != base + n:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        totals = [scim2_total(scrape_process(server.port)) for _ in range(8)]
        assert totals == [base + n] * 8, totals
        scraped_by = {int(m) for m in re.findall(
            r"^\S+ INFO (\d+) gateway\.access .* GET /metrics ", server.output(), re.M)}
        assert set(workers) <= scraped_by, (scraped_by, workers)  # each answered some

        # the escaped connector name parses back as it was configured
        found = scrape_process(server.port)
        assert total(found, "gateway_outbound_queue", connector=WEIRD, state="outbox") == 0
        assert (("gateway_outbound_queue", frozenset({("connector", WEIRD),
                                                      ("state", "outbox")})) in found)
        # each live worker's process metrics, by pid
        pids = {dict(ls)["pid"] for name, ls in found if name == "process_open_fds"}
        assert pids == {str(p) for p in workers}

        # a worker killed with kill -9: its counts stay in the sum
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and not re.search(
                r"worker \d started again as process", server.output()):
            time.sleep(0.1)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and len(workers_of(server)) < 3:
            time.sleep(0.1)
        assert len(workers_of(server)) == 3, server.output()
        for _ in range(6):
            assert scim2_total(scrape_process(server.port)) == base + n
    assert server.proc.returncode == 0, server.output()
    assert "Traceback" not in server.output()
