"""Load test: launch the app on loopback and drive `/compare` with many concurrent clients.

Bounded in clients, requests and seconds; stops by itself. Reports the start-up time (launch to a page that
answers); one client's latency through `gradio_client` and through plain HTTP on `/status` (no work: the
floor of a round trip through Gradio's queue), `/recommend` (one model) and `/compare` (every column); then
under load: requests/s, latency p50/p95/p99, errors, queue rejections (answered cleanly, with a message) and
the server's resident memory after 100 and after 1,000 requests. Only 127.0.0.1 is ever contacted.

The clients under load speak plain HTTP by default (`--client http`): Gradio's REST API as `curl` uses it, one
POST with the inputs and one event stream for the result, one session per client. Real clients run on their
own machines; here they share the server's 2 cores, and `gradio_client` waits for each result by polling
every 50 ms in a thread per request (`--client gradio` measures that setup; the single-client rows show its
floor).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import psutil

from benchmarks.common import ROOT, machine, machine_line, markdown_table, percentiles, write_results

# the prompts of a run, in turn: by default five pairs, kept by the engine after their first use, as any prompt
# typed often would be; `--prompts varied` replaces them with 270 that come back only every 270 requests
PROMPTS = [("something that makes me laugh", "horror"), ("space and aliens", ""), ("", "romance"),
           ("animated films", "musicals"), ("", "")]


def varied_prompts() -> list[tuple[str, str]]:
    """A want and an avoid for each of 270 requests: the evaluation wordings of ML-100K's 18 genres (270 of
    each)."""
    from core.data import GROUPLENS_GENRES
    from core.prompts import phrasings

    genres = [genre for genre in GROUPLENS_GENRES if genre != "unknown"]
    wants = [text for genre in genres for text in phrasings(genre, False, "eval")]
    avoids = [text for genre in genres for text in phrasings(genre, True, "eval")]
    return [(want, avoids[(97 * n + 135) % len(avoids)]) for n, want in enumerate(wants)]  # avoids in another order


def request_inputs(request: int) -> tuple[str, str, str]:
    """(user, want, avoid) of the n-th request: users and prompts in turn (with the five default prompts, no user
    and prompts twice in 4,715 requests)."""
    return (str(1 + request % 943), *PROMPTS[request % len(PROMPTS)])


# numbers every request of a run, across the single-client rows and the load itself, so that no request repeats
# an earlier one's user within 943 requests (nor its user and prompts within 4,715), and the engine's kept
# answers (the backbones' user vectors, MixRec's under a prompt) do not flatter the figures; the five prompts'
# encodings are kept all the same, as any prompt typed often would be
REQUEST_NUMBERS = itertools.count()


# what one request asks: (label, endpoint, its inputs for the n-th request)
# (over REST every argument is sent, the optional strict_avoid and history too; gradio_client fills them in)
COMPARE = ("/compare", "/compare", lambda n: (*request_inputs(n), "sasrec", 10, False, ""))
SINGLE_CLIENT_CALLS = [
    ("/status", "/status", lambda n: ()),
    ("/recommend sasrec", "/recommend", lambda n: ("sasrec", request_inputs(n)[0], "", "", "sasrec", 10, False, "")),
    ("/recommend dpr", "/recommend", lambda n: ("dpr", *request_inputs(n), "sasrec", 10, False, "")),
    COMPARE,
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(port: int, models: str | None = None) -> subprocess.Popen:
    """The app on a port; `models` (comma-separated) limits what it loads, as STEERREC_MODELS does."""
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    if models:
        env["STEERREC_MODELS"] = models
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 120):
    from gradio_client import Client

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the app exited during start-up")
        try:
            return Client(url, verbose=False)
        except Exception:  # not listening yet
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer within {timeout} s")


class HttpClient:
    """A client of Gradio's REST API (POST /gradio_api/call/<name>, then read its event stream); `predict`
    answers as gradio_client's does: the one output, or a tuple of several. Like gradio_client and a browser
    tab, it keeps one session for all its calls (without one, the server builds a fresh session per call)."""

    def __init__(self, url: str):
        import httpx

        self.url = url
        self.http = httpx.Client(timeout=120)
        self.session = uuid.uuid4().hex

    def predict(self, *inputs, api_name: str):
        response = self.http.post(f"{self.url}gradio_api/call{api_name}",
                                  json={"data": list(inputs), "session_hash": self.session})
        if response.status_code == 503:
            raise RuntimeError(f"the queue is full: {response.text[:100]}")
        response.raise_for_status()
        event_id = response.json()["event_id"]
        event = None
        with self.http.stream("GET", f"{self.url}gradio_api/call{api_name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = json.loads(line[5:])
                    if event == "error":
                        raise RuntimeError(data.get("error") if isinstance(data, dict) else f"error: {data}")
                    return data[0] if len(data) == 1 else tuple(data)
        raise RuntimeError("the event stream ended without a result")


def make_client(kind: str, url: str):
    if kind == "http":
        return HttpClient(url)
    from gradio_client import Client

    return Client(url, verbose=False)


def drive(url: str, clients: int, seconds: float, max_requests: int, server: psutil.Process | None = None,
          kind: str = "http", call=COMPARE) -> dict:
    """Run `clients` threads, each with its own client, until time or the request budget runs out."""
    lock = threading.Lock()
    latencies, errors, rejections, memory = [], [], 0, {}
    issued = 0
    deadline = time.time() + seconds
    _, endpoint, inputs = call

    def worker():
        nonlocal issued, rejections
        client = make_client(kind, url)
        while time.time() < deadline:
            with lock:
                if issued >= max_requests:
                    return
                issued += 1
                request, number = issued, next(REQUEST_NUMBERS)
            started = time.perf_counter()
            try:
                client.predict(*inputs(number), api_name=endpoint)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
            except Exception as error:  # the queue is full, or a real error
                with lock:
                    if "queue" in str(error).lower() and "full" in str(error).lower():
                        rejections += 1
                    else:
                        errors.append(str(error)[:200])
            if server is not None and request in (100, 1000):
                memory[request] = round(server.memory_info().rss / 2**20, 1)

    started = time.time()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    wall = time.time() - started
    result = {"client": kind, "call": call[0], "clients": clients, "seconds": round(wall, 1),
              "requests": len(latencies), "requests_per_s": round(len(latencies) / wall, 2), "errors": len(errors),
              "error_samples": errors[:5], "queue_rejections": rejections,
              "rss_mb_after_100": memory.get(100), "rss_mb_after_1000": memory.get(1000)}
    if latencies:
        result.update(percentiles(latencies))
    return result


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--client", choices=["http", "gradio"], default="http",
                        help="what the clients under load speak (default: plain HTTP)")
    parser.add_argument("--models", help="comma-separated models the app loads (default: all, as deployed)")
    parser.add_argument("--prompts", choices=["repeat", "varied"], default="repeat",
                        help="five prompt pairs in turn (default), or a new want and avoid for each of 270 requests")
    args = parser.parse_args(argv)
    if args.prompts == "varied":
        PROMPTS[:] = varied_prompts()
    port = free_port()
    started = time.perf_counter()
    process = start_app(port, args.models)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, process)
        startup = round(time.perf_counter() - started, 1)
        single = [drive(url, 1, 60, 50, kind=kind, call=call) for kind in ("gradio", "http")
                  for call in SINGLE_CLIENT_CALLS]
        server, generator = psutil.Process(process.pid), psutil.Process()
        before = cpu_seconds(server), cpu_seconds(generator)
        result = drive(url, args.clients, args.seconds, args.max_requests, server=server, kind=args.client)
        result["server_cpu_s"] = round(cpu_seconds(server) - before[0], 1)
        result["load_generator_cpu_s"] = round(cpu_seconds(generator) - before[1], 1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    info = machine()
    growth = None
    if result["rss_mb_after_100"] and result["rss_mb_after_1000"]:
        growth = round(100 * (result["rss_mb_after_1000"] / result["rss_mb_after_100"] - 1), 1)
    result["rss_growth_percent_100_to_1000"] = growth
    result["startup_s"] = startup
    result["single_client"] = [{k: row.get(k) for k in ("client", "call", "requests", "p50_ms", "p95_ms", "errors")}
                               for row in single]
    served = args.models or "all models"
    prompts = ("want + avoid prompts on most requests, five pairs in turn" if args.prompts == "repeat" else
               "a want and an avoid on every request, 270 pairs in turn")
    markdown = (f"## Load: {args.clients} concurrent `/compare` clients against the app on loopback ({served}"
                f"{', varied prompts' if args.prompts == 'varied' else ''})\n\n"
                f"Start-up to a page that answers: {startup} s.\n\nOne client alone (`/status`: no work, the "
                f"round trip alone; `/recommend`: one model; `/compare`: every loaded column; {prompts}):\n\n"
                + markdown_table(result["single_client"], ["client", "call", "requests", "p50_ms", "p95_ms",
                                                           "errors"])
                + f"\n\nUnder load ({args.client} clients, on the same 2 cores as the server):\n\n"
                + markdown_table([result], ["clients", "seconds", "requests", "requests_per_s", "p50_ms", "p95_ms",
                                            "p99_ms", "errors", "queue_rejections", "server_cpu_s",
                                            "load_generator_cpu_s", "rss_mb_after_100", "rss_mb_after_1000",
                                            "rss_growth_percent_100_to_1000"])
                + f"\n\n{machine_line(info)}\n")
    name = "load" if not args.models else "load_" + args.models.replace(",", "_")  # one table per app setup
    if args.clients != parser.get_default("clients"):
        name += f"_{args.clients}_clients"
    if args.client != "http":
        name += f"_{args.client}_clients"
    if args.prompts == "varied":
        name += "_varied_prompts"
    write_results(name, {"machine": info, "models": served, **result}, markdown)


if __name__ == "__main__":
    main()
