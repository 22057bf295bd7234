"""`vlmsearch serve` under load and attack, as a server beyond localhost (bound to 0.0.0.0, with an
API key, reached through this machine's own network address):

1. baseline: 50 clients for `--seconds` (text search, image search, passages, a few answers);
2. the same load again while attackers send oversized uploads, path traversal in every parameter,
   missing and wrong keys, and hold slow connections that dribble their headers;
3. health and memory after. Counts 5xx (must be 0), samples the server's memory every half second,
   and checks every attack got the status it should.

    python -m benchmarks.siege [--clients 50] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from benchmarks.serve import _memory_mb, _serve
from vlmsearch.demo import collection
from vlmsearch.knowledge.wordnet import WordNet

KEY = "siege-key"
SEARCHES = ("a cat", "coffee", "a rocket", "the moon", "a clock", "an astronaut", "text on a sign", "a horse")
QUESTIONS = ("how long do cats live?", "what is an espresso maker?", "what is a rocket used for?")


def own_address() -> str:
    """This machine's address on its network (not loopback), so the server sees a remote client."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _client_loop(url: str, n: int, until: float, photo: bytes) -> list[dict]:
    """One client: requests back to back until `until`; every 10th client asks questions instead."""
    done = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as client:
        i = 0
        while time.monotonic() < until:
            start, kind = time.perf_counter(), ("ask" if n % 10 == 9 else ("search", "image", "passages")[i % 3])
            try:
                if kind == "ask":
                    response = client.post("/v1/ask?stream=false", data={"question": QUESTIONS[i % len(QUESTIONS)], "pipeline": "llm"})
                elif kind == "search":
                    response = client.get("/v1/search", params={"q": SEARCHES[(n + i) % len(SEARCHES)]})
                elif kind == "image":
                    response = client.post("/v1/search", files={"image": ("photo.png", photo, "image/png")})
                else:
                    response = client.get("/v1/passages", params={"q": SEARCHES[(n + i) % len(SEARCHES)]})
                status = response.status_code
            except httpx.HTTPError as exc:
                status = f"transport: {type(exc).__name__}"
            done.append({"kind": kind, "status": status, "seconds": time.perf_counter() - start})
            i += 1
    return done


def _load(url: str, clients: int, seconds: float, photo: bytes) -> dict:
    until = time.monotonic() + seconds
    with ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(lambda n: _client_loop(url, n, until, photo), range(clients)) for r in batch]
    ok = [r for r in results if r["status"] == 200]
    row = {"requests": len(results), "per_s": round(len(results) / seconds, 1),
           "5xx": sum(isinstance(r["status"], int) and r["status"] >= 500 for r in results),
           "transport errors": sum(isinstance(r["status"], str) for r in results),
           "other": sum(isinstance(r["status"], int) and r["status"] not in (200,) and r["status"] < 500 for r in results)}  # fmt: skip
    for kind in ("search", "image", "passages", "ask"):
        times = [r["seconds"] * 1000 for r in ok if r["kind"] == kind]
        if times:
            row[f"{kind} n"] = len(times)
            row[f"{kind} p50 ms"] = round(float(np.percentile(times, 50)), 1)
            row[f"{kind} p95 ms"] = round(float(np.percentile(times, 95)), 1)
    return row


def _slow_connection(host: str, port: int, stop: threading.Event, held: list[float]) -> None:
    """Slowloris: a request whose headers arrive one short line every few seconds, never finished."""
    try:
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(b"GET /v1/search?q=cat HTTP/1.1\r\nHost: x\r\n")
            opened = time.monotonic()
            while not stop.wait(3):
                conn.sendall(b"X-Slow: 1\r\n")
            held.append(time.monotonic() - opened)
    except OSError:
        held.append(-1.0)  # the server closed it: also fine


def _attacks(url: str, photo: bytes) -> list[dict]:
    """Each hostile request with the status it must get."""
    key = {"Authorization": f"Bearer {KEY}"}
    huge = b"\x89PNG\r\n\x1a\n" + b"0" * (25 * 2**20)
    cases = [
        ("no key", "GET", "/v1/search?q=cat", {}, None, 401),
        ("wrong key", "GET", "/v1/search?q=cat", {"Authorization": "Bearer nope"}, None, 401),
        ("key in the wrong header", "GET", "/v1/models", {"X-Api-Token": KEY}, None, 401),
        ("no key, OpenAI route", "POST", "/v1/chat/completions", {}, {"json": {"model": "vlmsearch", "messages": []}}, 401),
        ("oversized upload (25 MiB)", "POST", "/v1/search", key, {"files": {"image": ("big.png", huge, "image/png")}}, 413),
        ("oversized index upload", "POST", "/v1/index", key, {"files": [("files", ("big.png", huge, "image/png"))]}, 413),
        ("index a server path without --allow-path", "POST", "/v1/index", key, {"json": {"paths": ["/etc"]}}, 403),
        ("index with traversal", "POST", "/v1/index", key, {"json": {"paths": ["../../../../etc/passwd"]}}, 403),
        ("upload name with traversal", "POST", "/v1/index", key,
         {"files": [("files", ("../../../../tmp/evil.png", photo, "image/png"))]}, 202),  # stored under a safe name
    ]  # fmt: skip
    for path in ("/v1/images/..%2f..%2fetc%2fpasswd", "/v1/images/../../etc/passwd", "/v1/images/%2e%2e/full",
                 "/v1/passages/..%2f..%2fetc%2fpasswd", "/v1/jobs/..%2f..%2fetc", "/static/..%2f..%2f..%2fetc%2fpasswd",
                 "/static/%2e%2e/%2e%2e/cli/__init__.py", "/judge/..%2f..%2fetc%2fpasswd"):  # fmt: skip
        cases.append((f"traversal {path}", "GET", path, key, None, 404))
    cases.append(("filter injection", "GET", "/v1/search?q=cat&where=1%3D1%3B%20DROP%20TABLE%20images", key, None, 400))
    results = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, method, path, headers, extra, expected in cases:
            response = client.request(method, path, headers=headers, **(extra or {}))
            leaked = b"root:" in response.content or b"def register" in response.content
            results.append({"what": name, "expected": expected, "status": response.status_code,
                            "ok": response.status_code == expected and not leaked})  # fmt: skip
    return results


def _sample_memory(pid: int, memory: list[float], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        memory.append(_memory_mb(pid))


def run(clients: int = 50, seconds: float = 60, slow_connections: int = 20) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = collection.photos(root / "photos")
        collection.wordnet_documents(root / "docs", WordNet())
        subprocess.run([sys.executable, "-m", "vlmsearch.cli", "--store", str(root / "store"), "index", str(root / "photos"),
                        str(root / "docs")], check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        process, url = _serve(root / "store", root / "serve.log", "--host", "0.0.0.0", "--api-key", KEY, address=own_address())
        memory, stop_sampling = [], threading.Event()
        sampler = threading.Thread(target=_sample_memory, args=(process.pid, memory, stop_sampling))
        sampler.start()
        try:
            photo = photos[2].read_bytes()  # chelsea
            started_mb = _memory_mb(process.pid)
            baseline = _load(url, clients, seconds, photo)
            host, port = url.removeprefix("http://").split(":")
            stop, held = threading.Event(), []
            slow = [threading.Thread(target=_slow_connection, args=(host, int(port), stop, held)) for _ in range(slow_connections)]
            for thread in slow:
                thread.start()
            attacks: list[dict] = []
            attacker = threading.Thread(target=lambda: attacks.extend(_attacks(url, photo)))
            attacker.start()
            under_attack = _load(url, clients, seconds, photo)
            attacker.join()
            stop.set()
            for thread in slow:
                thread.join()
            healthy = httpx.get(url + "/healthz", timeout=30).status_code == 200
        finally:
            stop_sampling.set()
            sampler.join()
            process.terminate()
            process.wait(30)
    return {
        "clients": clients, "seconds": seconds, "address": "non-loopback" if not url.startswith("http://127.") else "loopback",
        "baseline": baseline, "under_attack": under_attack, "attacks": attacks,
        "attacks_refused_right": sum(a["ok"] for a in attacks), "attacks_total": len(attacks),
        "slow_connections": slow_connections, "slow_connections_closed_by_server": sum(h < 0 for h in held),
        "healthy_after": healthy, "rss_mb": {"at_start": started_mb, "peak": max(memory), "end": memory[-1]},
    }  # fmt: skip


def main() -> None:
    from benchmarks.common import print_table, write_json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    result = run(args.clients, args.seconds)
    print_table(f"{result['clients']} clients for {result['seconds']:.0f} s ({result['address']} address, API key)", [
        {"what": "baseline", **result["baseline"]}, {"what": "under attack", **result["under_attack"]},
    ])  # fmt: skip
    print_table("attacks", [{k: a[k] for k in ("what", "expected", "status", "ok")} for a in result["attacks"]])
    print(f"attacks answered right {result['attacks_refused_right']}/{result['attacks_total']}; healthy after: "
          f"{result['healthy_after']}; server RSS MB {result['rss_mb']}")  # fmt: skip
    print(f"results: {write_json('siege', result)}")


if __name__ == "__main__":
    main()
