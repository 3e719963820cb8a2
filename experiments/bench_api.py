"""Load benchmark of the queue endpoint: one uvicorn worker on loopback, 50 concurrent clients.

Run: ``python experiments/bench_api.py [--teams 3] [--calls-per-team 3000] [--clients 50]``.
The server runs in its own process (so the load generator does not share its GIL) over a
synthetic DailyRun of realistic size; clients are keep-alive HTTP/1.1 connections on asyncio,
each sending its next request as soon as the last answer arrived (closed loop, no think time).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.contract import CALL_LIST_COLUMNS, SCORES_COLUMNS  # noqa: E402
from serving.daily import DailyRun  # noqa: E402

TOKEN = "bench-admin-token"
ZONE = "Asia/Shanghai"
STAGES = np.array(["early", "middle", "late", "M2", "M3"])
REASONS = np.array(
    [
        "broken promise yesterday",
        "payday in 2 days",
        "best reached at 09:00",
        "35 DPD and 4,200 overdue",
        "partial payment last week",
        "no contact in 10 days",
    ]
)


def synthetic_daily_run(teams: int, calls_per_team: int, seed: int, list_date: dt.date) -> DailyRun:
    """A DailyRun shaped like a real day: `teams` × `calls_per_team` calls over a 09:00-21:00 shift."""
    rng = np.random.default_rng(seed)
    n = teams * calls_per_team
    team_names = np.array([f"team-{k + 1}" for k in range(teams)])
    team = np.repeat(team_names, calls_per_team)
    hours = np.arange(9, 21)
    per_hour = -(-calls_per_team // len(hours))
    within = np.tile(np.arange(calls_per_team), teams)
    centre_hour = hours[within // per_hour]
    midnight = pd.Timestamp(list_date).tz_localize(ZONE)
    call_at = (midnight + pd.to_timedelta(centre_hour, unit="h")).tz_convert("UTC")
    debtor_offset = rng.choice([0, -1, 1], size=n)
    p_repay = rng.uniform(0.05, 0.95, n).round(4)
    p_contact = rng.uniform(0.05, 0.6, n).round(4)
    amount = rng.gamma(2.0, 1500.0, n).round(2)
    expected_value = np.sort((amount * p_contact * (1 - p_repay) * 0.4).round(2))[::-1]
    reason_picks = rng.integers(0, len(REASONS), size=(n, 3))
    reasons = (
        pd.Series(REASONS[reason_picks[:, 0]]) + ";" + REASONS[reason_picks[:, 1]] + ";" + REASONS[reason_picks[:, 2]]
    )
    account_id = pd.Series(np.arange(n)).map("A{:07d}".format)
    version = "repayment:7;contact:5;call-effect:3"
    call_list = pd.DataFrame(
        {
            "list_date": pd.Timestamp(list_date),
            "rank": np.arange(1, n + 1),
            "account_id": account_id,
            "customer_id": "C" + account_id.str[1:],
            "team": team[rng.permutation(n)],
            "agent_id": pd.Series(rng.integers(1, 40, n)).map("G{:02d}".format),
            "call_at": call_at[rng.permutation(n)],
            "local_hour": 0,
            "p_repay": p_repay,
            "p_contact": p_contact,
            "expected_value": expected_value,
            "amount_overdue": amount,
            "days_past_due": rng.integers(1, 120, n),
            "stage": STAGES[rng.integers(0, len(STAGES), n)],
            "reasons": reasons,
            "model_version": version,
        },
        columns=list(CALL_LIST_COLUMNS),
    )
    local = call_list["call_at"].dt.tz_convert(ZONE).dt.hour.to_numpy()
    call_list["local_hour"] = (local + debtor_offset) % 24
    scores = pd.DataFrame(
        {
            "account_id": account_id,
            "as_of": pd.Timestamp(list_date, tz="UTC"),
            "p_repay": p_repay,
            "best_hour_local": call_list["local_hour"].astype("Int64"),
            "p_contact_best": p_contact,
            "amount_overdue": amount,
            "days_past_due": call_list["days_past_due"],
            "stage": call_list["stage"],
            "eligible": True,
            "model_version": version,
        },
        columns=list(SCORES_COLUMNS),
    )
    scheduled = call_list.groupby(["team", "call_at"]).size().rename("scheduled").reset_index()
    capacity = scheduled.assign(centre_hour=scheduled["call_at"].dt.tz_convert(ZONE).dt.hour, capacity=per_hour + 20)[
        ["team", "call_at", "centre_hour", "capacity", "scheduled"]
    ]
    features = np.array(["days_past_due", "promise_broken_7d", "next_payday_in_days", "rpc_rate_hour_bucket_2"])
    explanations = pd.DataFrame(
        {
            "account_id": np.repeat(account_id.to_numpy(), len(features)),
            "feature": np.tile(features, n),
            "value": rng.uniform(0, 30, n * len(features)).round(2),
            "contribution": rng.normal(0, 0.3, n * len(features)).round(4),
        }
    )
    special = pd.DataFrame(columns=["account_id", "customer_id", "team", "reason", "amount_overdue", "days_past_due"])
    return DailyRun(
        as_of=pd.Timestamp(list_date, tz="UTC"),
        list_date=list_date,
        centre_timezone=ZONE,
        scores=scores,
        call_list=call_list,
        special_handling=special,
        capacity=capacity,
        explanations=explanations,
        models={"callq-repayment": {"version": "7", "metrics": {"auc": 0.8}}},
        model_version=version,
    )


def serve(args: argparse.Namespace) -> None:
    """The server side: build the run, index it once, serve on loopback with one worker."""
    import uvicorn

    from serving.api import StaticProvider, create_app
    from serving.auth import TokenAuth

    run = synthetic_daily_run(args.teams, args.calls_per_team, args.seed, dt.date.fromisoformat(args.date))
    app = create_app(StaticProvider(run), auth=TokenAuth.parse(f"{TOKEN}:*"))
    started = time.perf_counter()
    app.state.days.get(None)  # index at start-up, as a server does when it loads the day's run
    print(f"indexed {len(run.call_list)} calls in {time.perf_counter() - started:.2f} s", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[bytes, bytes]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    writer.write(request.encode("ascii"))
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def _client(
    port: int,
    paths: list[str],
    deadline: float,
    max_requests: int,
    timeout: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    """One keep-alive connection sending requests back to back until the deadline or its quota."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(len(latencies))
    try:
        for _ in range(max_requests):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            try:
                head, body = await asyncio.wait_for(_exchange(reader, writer, rng.choice(paths)), timeout)
            except TimeoutError:
                errors.append(f"no answer within {timeout} s")
                latencies.append(timeout)
                break  # the connection's state is unknown: this client stops
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or not body.startswith(b'{"team"'):
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


async def _load(port: int, paths: list[str], clients: int, seconds: float, per_client: int, timeout: float) -> tuple:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(port, paths, deadline, per_client, timeout, latencies, errors) for _ in range(clients))
    )
    return latencies, errors, time.perf_counter() - started


def queue_paths(teams: int, calls_per_team: int, page_size: int, seed: int) -> list[str]:
    """A mix of queue requests: mostly plain pages, some with a stage, amount or hour filter."""
    rng = random.Random(seed)
    pages = -(-calls_per_team // page_size)
    paths = []
    for _ in range(500):
        team = f"team-{rng.randint(1, teams)}"
        query = f"page={rng.randint(1, pages)}&page_size={page_size}"
        kind = rng.random()
        if kind < 0.15:
            query = f"page=1&page_size={page_size}&stage={rng.choice(STAGES.tolist())}"
        elif kind < 0.25:
            query = f"page=1&page_size={page_size}&min_amount={rng.choice([500, 2000, 5000])}"
        elif kind < 0.3:
            query = f"page=1&page_size={page_size}&hour={rng.randint(9, 20)}"
        paths.append(f"/teams/{team}/queue?{query}")
    return paths


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to report CPU per request beside latency."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_stack() -> str:
    """What uvicorn's `auto` settings pick in the server process (it inherits this environment)."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def bench(args: argparse.Namespace) -> dict:
    """Start the server, warm up, then measure; returns the figures (also printed as JSON)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        __file__,
        "serve",
        "--port",
        str(port),
        "--teams",
        str(args.teams),
        "--calls-per-team",
        str(args.calls_per_team),
        "--seed",
        str(args.seed),
        "--date",
        args.date,
    ]
    server = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the API server did not start") from None
                time.sleep(0.2)
        paths = queue_paths(args.teams, args.calls_per_team, args.page_size, args.seed)
        asyncio.run(_load(port, paths, args.clients, 3.0, 200, args.request_timeout))  # warm-up, not measured
        cpu_before = cpu_seconds(server.pid)
        latencies, errors, elapsed = asyncio.run(
            _load(port, paths, args.clients, args.seconds, args.max_requests // args.clients, args.request_timeout)
        )
        cpu_after = cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies) * 1000
    result = {
        "teams": args.teams,
        "calls_per_team": args.calls_per_team,
        "clients": args.clients,
        "page_size": args.page_size,
        "requests": len(latencies),
        "errors": len(errors),
        "server": f"uvicorn, 1 worker, {server_stack()}",
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        # Server CPU per request: the service time, which (unlike latency) a busy machine barely moves.
        "server_cpu_ms_per_request": (
            round((cpu_after - cpu_before) * 1000 / len(latencies), 3)
            if cpu_before is not None and cpu_after is not None and latencies
            else None
        ),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "target_p99_ms": 50.0,
    }
    result["meets_target"] = result["p99_ms"] < result["target_p99_ms"] and not errors
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--teams", type=int, default=3)
    parser.add_argument("--calls-per-team", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0, help="measurement time limit")
    parser.add_argument("--max-requests", type=int, default=20000, help="request limit over all clients")
    parser.add_argument("--request-timeout", type=float, default=5.0, help="a slower answer counts as an error")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--date", default="2026-11-23")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args)
        return 0
    result = bench(args)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
