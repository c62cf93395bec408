"""A short load test: the launched app answers concurrent `/compare` clients without errors and in time.

The full benchmark (benchmarks/load.py, 32 clients for a minute) is too long for the suite; this drives the same
code path with 6 clients for at most 15 s or 120 requests, on loopback only.
"""
import subprocess

import psutil
import pytest

from benchmarks.load import drive, free_port, make_client, start_app, wait_until_up


@pytest.fixture(scope="module")
def server():
    """The app as a separate process on a free port; always terminated, even when start-up fails."""
    port = free_port()
    process = start_app(port)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, process, timeout=120)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def test_concurrent_clients_get_answers_without_errors(server):
    """Six clients at once: every request answered, none failed, p95 latency under 5 s on 2 CPU cores."""
    url, process = server
    result = drive(url, clients=6, seconds=15, max_requests=120, server=psutil.Process(process.pid))
    assert result["errors"] == 0, result["error_samples"]
    assert result["requests"] > 0 and result["queue_rejections"] == 0, result
    assert result["p95_ms"] < 5000, result
    assert process.poll() is None, "the server died under load"


@pytest.mark.parametrize("kind", ["gradio", "http"])
def test_status_and_errors_over_both_clients(server, kind):
    """/status says what is served; a bad request comes back as the app's message, not a server fault."""
    url, _ = server
    client = make_client(kind, url)
    answer = client.predict(api_name="/status")
    assert answer["dataset"] == "ml-100k" and answer["users"] == 943
    assert set(answer["models"]) == {"sasrec", "gru4rec", "dpr/sasrec", "dpr/gru4rec", "mixrec"}
    assert answer["models"]["sasrec"] is None  # loaded
    with pytest.raises(Exception, match="unknown user"):
        client.predict("no-such-user", "", "", "sasrec", 10, False, "", api_name="/compare")


def test_varied_prompts_bring_a_new_want_and_avoid_to_each_request(monkeypatch):
    """`--prompts varied`: 270 requests in turn, each with a want and an avoid that no other of them has."""
    from benchmarks import load

    monkeypatch.setattr(load, "PROMPTS", load.varied_prompts())
    requests = [load.request_inputs(n) for n in range(270)]
    assert all(want and avoid for _, want, avoid in requests)
    assert len({want for _, want, _ in requests}) == len({avoid for _, _, avoid in requests}) == 270
    assert load.request_inputs(270)[1:] == requests[0][1:]  # then they come back
