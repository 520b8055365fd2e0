"""The dashboard server over real HTTP: pages, JSON API, loopback default, no path traversal."""

from __future__ import annotations

import dataclasses
import http.client
import inspect
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeq.dashboard.page import pareto_flags
from edgeq.dashboard.server import DashboardServer, create_server
from edgeq.report.read import load_report
from edgeq.store.runs import RunStore
from tests.typed_reports import rerun

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
RUN1 = load_report(FIXTURES / "v1_mrl_cpu.json").run_id
SLOWER = load_report(FIXTURES / "v1_mrl_int4.json").run_id
GATED = load_report(FIXTURES / "v1_binary_ae_gates.json")
FASTER = rerun(load_report(FIXTURES / "v1_tsp_cpu.json"), "20261202T080000-fa57e1", 0.1, 0.01, 0.0)
# The gated binary_ae run again, as fast and faithful, but held to a speedup it cannot reach: exit 3.
GATE_FAILED = dataclasses.replace(
    rerun(GATED, "20261202T070000-9a7ef0", 1.0, 0.0, 0.0),
    gates=[
        dataclasses.replace(g, limit=100.0, passed=False) if g.name == "min_speedup" else g
        for g in GATED.gates
    ],
)
RUNS = 8


def record_fixtures(store: RunStore, folder: Path) -> None:
    """The real reports (the int4 MRL run is slower than the int8 one, a changed recipe: no
    regression), a tsp run ten times faster and less faithful with the same recipe (a regression
    and a second Pareto point), and a run whose gate failed."""
    for path in sorted(FIXTURES.glob("*.json")):
        store.record(load_report(path), folder / path.stem)
    store.record(FASTER)
    store.record(GATE_FAILED)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DashboardServer]:
    store = RunStore(tmp_path / "runs.sqlite")
    record_fixtures(store, tmp_path)
    running = create_server(store, port=0)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def fetch(server: DashboardServer, path: str) -> tuple[int, dict, str]:
    """GET `path` exactly as given: http.client does not normalise `..` the way urllib might."""
    connection = http.client.HTTPConnection(*server.server_address, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_binds_loopback_by_default(server: DashboardServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    assert inspect.signature(create_server).parameters["host"].default == "127.0.0.1"


def test_dashboard_page_lists_runs_and_charts(server: DashboardServer) -> None:
    status, headers, page = fetch(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'sha256-" in headers["Content-Security-Policy"]
    assert page.count("<tr") == 1 + RUNS
    regressions = page.split('id="regressions"')[1].split("</section>")[0]
    assert f"{FASTER.run_id}</a> vs" in regressions and "worst cosine" in regressions
    assert SLOWER not in regressions  # int4 after int8 is a recipe change, not a regression
    assert "Regressions (1)" in page
    # latency history of the 2 series with two timed runs (binary_ae's gated recipe, tsp), a front per model
    assert page.count("<svg") == 2 + 3
    assert 'class="run-point front"' in page and "pareto-front" in page


def test_runs_table_shows_decision_slowest_speedup_and_the_gates_verdict(server: DashboardServer) -> None:
    _, _, page = fetch(server, "/")
    row = next(r for r in page.split("<tr")[1:] if GATED.run_id in r)
    assert f"<td>{GATED.decision.chosen}</td>" in row
    assert f"{GATED.slowest_speedup:.2f}×" in row
    assert '<span class="badge pass">pass</span>' in row
    ungated = next(r for r in page.split("<tr")[1:] if RUN1 in r)
    assert "no gates" in ungated


def test_a_failed_gate_is_shown_as_failed_not_ok(server: DashboardServer) -> None:
    _, _, page = fetch(server, "/")
    row = next(r for r in page.split("<tr")[1:] if GATE_FAILED.run_id in r)
    assert '<span class="badge fail">FAIL: min_speedup</span>' in row
    assert ">gate failed</span>" in row and ">ok</span>" not in row
    assert "1 failed gates" in page


def test_runs_table_has_recipe_columns_and_sort_keys(server: DashboardServer) -> None:
    _, _, page = fetch(server, "/")
    head = page.split("<thead>")[1].split("</thead>")[0]
    for column in ("bits", "mode", "prune", "chosen lowering", "gates", "status"):
        assert f">{column}</button>" in head
    int4 = next(r for r in page.split("<tr")[1:] if SLOWER in r)
    assert '<td class="num" data-sort="4">4</td>' in int4 and "<td>int4-planned</td>" in int4
    pruned = next(r for r in page.split("<tr")[1:] if "712f24" in r)
    assert "<td>ifm β=0.25 max 0.2</td>" in pruned


def test_dashboard_filters_by_query(server: DashboardServer) -> None:
    _, _, page = fetch(server, "/?model=binary_ae%2Fmodel")
    assert page.count("<tr") == 1 + 3
    _, _, page = fetch(server, "/?target=%3Cscript%3E")
    assert page.count("<tr") == 1
    assert "<script>" not in page.replace("<script>const table", "")


def test_api_runs_is_json_and_filterable(server: DashboardServer) -> None:
    status, headers, body = fetch(server, "/api/runs?target=gpu-tensorrt")
    assert status == 200 and headers["Content-Type"] == "application/json"
    (run,) = json.loads(body)
    assert run["model"] == "mrl_encoder/model" and run["speedup_b1"] is None and run["speedups"] == {}
    assert len(json.loads(fetch(server, "/api/runs")[2])) == RUNS


def test_stored_report_is_served_from_file_or_rendered(server: DashboardServer) -> None:
    status, headers, page = fetch(server, f"/runs/{RUN1}/report.html")
    assert status == 200 and "mrl_encoder" in page and 'id="latency"' in page
    assert "script-src" not in headers["Content-Security-Policy"]
    html_path = Path(server.store.summary(RUN1).html_path)
    html_path.parent.mkdir(parents=True)
    html_path.write_text("<p>the compile's own page</p>")
    assert fetch(server, f"/runs/{RUN1}/report.html")[2] == "<p>the compile's own page</p>"


def test_a_stored_report_that_no_longer_reads_is_one_line_not_a_crash(server: DashboardServer) -> None:
    with sqlite3.connect(server.store.path) as connection:
        connection.execute(
            'UPDATE runs SET report_json = replace(report_json, \'"passed": true\', \'"passed": "yes"\')'
            " WHERE run_id = ?",
            (GATED.run_id,),
        )
    status, _, body = fetch(server, f"/runs/{GATED.run_id}/report.html")
    assert status == 422 and "report.gates[0].passed must be a bool" in body
    assert fetch(server, "/")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/runs/../../etc/passwd",
        "/runs/%2e%2e/%2e%2e/etc/passwd",
        "/runs/..%2f..%2fetc%2fpasswd/report.html",
        "/runs/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/report.html",
        "/runs/..%252f..%252fetc/report.html",
        "/runs/../report.html",
        "/runs/nope/report.html",
        f"/runs/{RUN1}/../../../etc/passwd",
        f"/runs/{RUN1}/report.json",
        "//etc/passwd",
        "/etc/passwd",
        "/static/../../etc/passwd",
    ],
)
def test_anything_else_is_404(server: DashboardServer, path: str) -> None:
    status, _, body = fetch(server, path)
    assert status == 404
    assert "root:" not in body


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [(1.0, 0.99), (2.0, 0.98), (1.5, 0.97), (2.0, 0.99), (0.5, 0.999)]
    assert pareto_flags(points, y_higher_is_better=True) == [False, False, False, True, True]
    assert pareto_flags([(1.0, 0.4), (2.0, 1.5), (1.5, 0.3)], y_higher_is_better=False) == [
        False,
        True,
        True,
    ]


# --- safe to leave running: files only from inside a run's output, Host checked, token beyond loopback


def fetch_with(server: DashboardServer, path: str, headers: dict[str, str]) -> tuple[int, dict, str]:
    """GET `path` with exactly these extra headers (Host included, when given)."""
    connection = http.client.HTTPConnection(*server.server_address, timeout=5)
    connection.putrequest("GET", path, skip_host="Host" in headers)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_a_report_html_linking_outside_its_output_is_not_served(
    server: DashboardServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    html_path = Path(server.store.summary(RUN1).html_path)
    html_path.parent.mkdir(parents=True)
    html_path.symlink_to(secret)
    status, _, body = fetch(server, f"/runs/{RUN1}/report.html")
    assert status == 200 and "root:" not in body and 'id="latency"' in body  # rendered from the store


def test_a_recorded_path_outside_the_run_is_not_served(server: DashboardServer, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.html").write_text("private notes")
    with sqlite3.connect(server.store.path) as connection:
        connection.execute(
            "UPDATE runs SET html_path = ? WHERE run_id = ?",
            (str(tmp_path / "elsewhere" / "notes.html"), RUN1),
        )
    assert "private notes" not in fetch(server, f"/runs/{RUN1}/report.html")[2]


@pytest.mark.parametrize("host", ["evil.example:8765", "attacker.test", "127.0.0.1.evil.example", ""])
def test_a_foreign_host_header_is_refused(server: DashboardServer, host: str) -> None:
    for path in ("/", "/api/runs", f"/runs/{RUN1}/report.html"):
        status, _, body = fetch_with(server, path, {"Host": host})
        assert status == 403 and "mrl_encoder" not in body


@pytest.mark.parametrize("host", ["localhost:8765", "127.0.0.1", "[::1]:8765", "LOCALHOST"])
def test_loopback_host_names_are_served(server: DashboardServer, host: str) -> None:
    assert fetch_with(server, "/api/runs", {"Host": host})[0] == 200


def test_api_runs_shows_no_filesystem_paths(server: DashboardServer, tmp_path: Path) -> None:
    runs = json.loads(fetch(server, "/api/runs")[2])
    assert all(run["report_url"] == f"/runs/{run['run_id']}/report.html" for run in runs)
    assert str(tmp_path) not in json.dumps(runs) and "html_path" not in runs[0]


def test_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    from edgeq.errors import InputError

    with pytest.raises(InputError, match="needs a token"):
        create_server(RunStore(tmp_path / "r.sqlite"), host="0.0.0.0", port=0)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[DashboardServer]:
    store = RunStore(tmp_path / "runs.sqlite")
    record_fixtures(store, tmp_path)
    running = create_server(store, port=0, token="s3cret-token-0123456789")
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


def test_a_token_server_answers_only_requests_carrying_it(guarded: DashboardServer) -> None:
    token = guarded.token
    assert fetch(guarded, "/api/runs")[0] == 401
    assert fetch_with(guarded, "/api/runs", {"X-Edgeq-Token": "wrong-token-0123456789"})[0] == 401
    assert fetch_with(guarded, "/api/runs", {"Cookie": "edgeq_token=nope"})[0] == 401
    assert fetch_with(guarded, "/api/runs", {"Authorization": f"Bearer {token}"})[0] == 200
    assert fetch_with(guarded, "/api/runs", {"X-Edgeq-Token": token})[0] == 200
    assert fetch_with(guarded, "/api/runs", {"Cookie": f"edgeq_token={token}"})[0] == 200


def test_the_token_in_the_url_sets_a_cookie_and_leaves_the_url(guarded: DashboardServer) -> None:
    status, headers, _ = fetch(guarded, f"/?model=binary_ae%2Fmodel&token={guarded.token}")
    assert status == 303 and headers["Location"] == "/?model=binary_ae%2Fmodel"
    assert (
        headers["Set-Cookie"].startswith(f"edgeq_token={guarded.token};")
        and "HttpOnly" in headers["Set-Cookie"]
    )
    assert fetch(guarded, "/?token=wrong")[0] == 401
