"""`respgate serve --workers 2`: real processes on one port, one SQLite data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.test_durability import assert_recovered_with_partial_output, start_and_kill
from tests.support.live import SRC, ServerProcess, free_port, running
from tests.support.oracle import assert_valid_stream, parse_sse

ENV = {"RESPGATE_NO_OLLAMA_PROBE": "1"}
TRIES = 400  # fresh connections tried before concluding a worker does not serve


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**ENV, "RESPGATE_DATA_DIR": str(tmp_path / "data")}


def pid_of(c: httpx.Client) -> int:
    return int(c.get("/healthz").json()["pid"])


def serving_pids(server: ServerProcess, count: int, deadline: float = 20) -> set[int]:
    """The pids answering /healthz, each on a fresh connection, until `count` were seen."""
    seen: set[int] = set()
    end = time.monotonic() + deadline
    while len(seen) < count:
        assert time.monotonic() < end, f"only {seen} answered"
        with server.client() as c:
            seen.add(pid_of(c))
    return seen


def client_on(server: ServerProcess, pid: int) -> httpx.Client:
    """A client whose (kept-alive) connection the worker `pid` accepted."""
    for _ in range(TRIES):
        c = server.client()
        if pid_of(c) == pid:
            return c
        c.close()
    raise AssertionError(f"worker {pid} accepted none of {TRIES} connections")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_serve_one_port_and_say_what_is_per_worker(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text("[limits]\nrequests_per_minute = 1000\n")
    log = tmp_path / "stderr.log"
    with (
        log.open("w") as stderr,
        running(
            {**env_for(tmp_path), "RESPGATE_WORKERS": "2"}, "--config", str(config), stderr=stderr
        ) as s,
    ):
        pids = serving_pids(s, 2)
        assert s.proc.pid not in pids  # the supervisor serves nothing itself
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            assert f"PPid:\t{s.proc.pid}\n" in status
        with s.client() as c:
            done = c.post("/v1/responses", json={"model": "echo", "input": "hi"}).json()
        for pid in pids:  # stored by one worker, read by each
            with closing(client_on(s, pid)) as c:
                assert c.get(f"/v1/responses/{done['id']}").json() == done
        deadline = time.monotonic() + 10
        while "workers: 2" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    text = log.read_text()
    assert f"workers: 2 (pids {', '.join(map(str, sorted(pids)))})" in text
    assert "limits: counted in each worker: a key may use 2x its limits" in text


def test_a_background_response_of_one_worker_streams_through_the_other(tmp_path: Path) -> None:
    slow = {"echo_scenario": "long", "echo_tokens": "150", "echo_delay_ms": "10"}
    with running(env_for(tmp_path), "--workers", "2") as s:
        a, b = serving_pids(s, 2)
        with closing(client_on(s, a)) as ca, closing(client_on(s, b)) as cb:
            body = {"model": "echo", "input": "x", "background": True, "metadata": slow}
            bg = ca.post("/v1/responses", json=body).json()
            assert cb.get(f"/v1/responses/{bg['id']}").json()["status"] in ("queued", "in_progress")
            events = parse_sse(
                cb.get(f"/v1/responses/{bg['id']}", params={"stream": "true"}).content
            )
            assert pid_of(ca) == a and pid_of(cb) == b  # each stayed on its worker
    assert_valid_stream(events)
    assert events[-1] == "[DONE]" and events[-2]["type"] == "response.completed"
    # no event lost or repeated: every sequence number once, in order
    assert [e["sequence_number"] for e in events[:-1]] == list(range(len(events) - 1))
    deltas = [e["delta"] for e in events[:-1] if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == events[-2]["response"]["output"][0]["content"][0]["text"]
    assert "".join(deltas).split() == [f"token{i}" for i in range(150)]


def test_a_killed_worker_is_replaced_and_its_response_failed(tmp_path: Path) -> None:
    with running(env_for(tmp_path), "--workers", "2") as s:
        a, b = serving_pids(s, 2)
        with closing(client_on(s, a)) as ca, closing(client_on(s, b)) as cb:
            response_id = start_and_kill(lambda: os.kill(a, signal.SIGKILL), ca, cb)
            assert_recovered_with_partial_output(cb, response_id)  # the live worker failed it
        deadline = time.monotonic() + 20
        while alive(a):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        now = serving_pids(s, 2)
        assert a not in now and b in now  # a new worker took the dead one's place
        assert s.proc.poll() is None


def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    slow = {"echo_scenario": "long", "echo_tokens": "80", "echo_delay_ms": "50"}
    body = {"model": "echo", "input": "x", "stream": True, "metadata": slow}
    with running(env_for(tmp_path), "--workers", "2", "--drain-delay", "2") as s:
        pids = sorted(serving_pids(s, 2))
        streams: list[Any] = []
        readers = [client_on(s, pid) for pid in pids]
        probes = [client_on(s, pid) for pid in pids]
        try:
            for c in readers:
                stream = c.stream("POST", "/v1/responses", json=body)
                response = stream.__enter__()
                chunks = response.iter_bytes()
                first = next(chunks)
                streams.append((stream, chunks, [first]))
            s.proc.send_signal(signal.SIGTERM)
            for probe in probes:  # every worker says "not ready" during the drain delay
                deadline = time.monotonic() + 1.5
                while probe.get("/readyz").status_code != 503:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            for _, chunks, received in streams:
                received.extend(chunks)
        finally:
            for stream, _, _ in streams:
                stream.__exit__(None, None, None)
            for c in readers + probes:
                c.close()
        assert s.proc.wait(30) == 0
    for _, _, received in streams:
        events = parse_sse(b"".join(received))
        assert events[-1] == "[DONE]" and events[-2]["type"] == "response.completed"
    assert not any(alive(pid) for pid in pids)


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    with running(env_for(tmp_path), "--workers", "2") as s:
        pids = serving_pids(s, 2)
        s.kill()  # SIGKILL: nothing is passed on; the kernel tells the workers
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            time.sleep(0.05)


def metric(text: str, series: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
    )


def test_metrics_on_any_worker_sum_every_workers_series(tmp_path: Path) -> None:
    completed = 'respgate_responses_total{model="echo",status="completed",transport="json"}'
    with running(env_for(tmp_path), "--workers", "2") as s:
        pids = sorted(serving_pids(s, 2))
        for i, pid in enumerate(pids):  # 1 response on the first worker, 2 on the second
            with closing(client_on(s, pid)) as c:
                for _ in range(i + 1):
                    c.post("/v1/responses", json={"model": "echo", "input": "x"}).raise_for_status()
        for pid in pids:
            with closing(client_on(s, pid)) as c:
                text = c.get("/metrics").text
                assert metric(text, completed) == 3
                assert metric(text, "respgate_responses_in_flight") == 0
                for own in ("process_cpu_seconds_total", "python_gc_collections_total"):
                    assert own not in text  # one process's, left out
        os.kill(pids[0], signal.SIGKILL)  # what a dead worker counted stays counted
        while alive(pids[0]):
            time.sleep(0.05)
        with closing(client_on(s, pids[1])) as c:
            assert metric(c.get("/metrics").text, completed) == 3


def test_a_directory_held_by_another_server_is_one_line(tmp_path: Path) -> None:
    with running(env_for(tmp_path)):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "respgate",
                "serve",
                "--port",
                str(free_port()),
                "--workers",
                "2",
            ],
            env={**os.environ, "PYTHONPATH": SRC, **env_for(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Another respgate process is using the data directory" in lines[0]


@pytest.mark.parametrize("text", ["0", "-2", "two"])
@pytest.mark.parametrize("where", ["flag", "environment"])
def test_workers_must_be_a_positive_number(text: str, where: str) -> None:
    flag = ["--workers", text] if where == "flag" else []
    setting = {"RESPGATE_WORKERS": text} if where == "environment" else {}
    done = subprocess.run(
        [sys.executable, "-m", "respgate", "serve", *flag],
        env={**os.environ, "PYTHONPATH": SRC, **ENV, **setting},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "argument --workers" in done.stderr
