"""`vlmsearch serve` under load on localhost: requests/s and p50/p95/p99 for `/v1/search` and
`/v1/ask` at 1, 4 and 16 concurrent clients (bounded in count), 5xx counted; for a lone warm ask,
the time to the answer's first words and the whole request versus the sum of its stages' time.
The server is a real subprocess over the demo's photos and WordNet documents, offline profile.

    python -m benchmarks.serve [--quick]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import print_table
from vlmsearch.demo import collection
from vlmsearch.knowledge.wordnet import WordNet

SEARCHES = ("a cat", "coffee", "a rocket", "the moon", "a clock", "an astronaut", "text on a sign", "a dog")
ASKS = (
    ("chelsea", "how long do animals like this live?"),
    ("coffee", "what is this drink made from?"),
    ("rocket", "what is this used for?"),
    (None, "what is an espresso maker?"),
)


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}


def _ask(client: httpx.Client, photos: dict[str, Path], case: tuple[str | None, str]) -> dict:
    """One streamed ask: status, time to the answer's first words on screen (its draft), total time, the
    stages' own time."""
    name, question = case
    files = {"image": (f"{name}.png", photos[name].read_bytes(), "image/png")} if name else None
    start, first, answer, status = time.perf_counter(), None, None, 0
    with client.stream("POST", "/v1/ask", data={"question": question, "pipeline": "llm"}, files=files) as response:
        status = response.status_code
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("draft", "token") and first is None:
                if json.loads(line.removeprefix("data: "))["text"].strip():
                    first = time.perf_counter() - start
            elif line.startswith("data: ") and event == "answer":
                answer = json.loads(line.removeprefix("data: "))
            elif line.startswith("data: ") and event == "error":
                status = json.loads(line.removeprefix("data: "))["error"]["code"]
    total = time.perf_counter() - start
    stages = sum(step["ms"] for step in answer["trace"]) / 1000 if answer else None
    return {"status": status, "seconds": total, "first_text": first if first is not None else total, "stages": stages}


def _search(client: httpx.Client, query: str) -> dict:
    start = time.perf_counter()
    response = client.get("/v1/search", params={"q": query, "k": 10})
    return {"status": response.status_code, "seconds": time.perf_counter() - start}


def _load(url: str, clients: int, requests: int, call) -> dict:
    """`requests` calls spread over `clients` threads, each with its own connection."""
    local = [httpx.Client(base_url=url, timeout=600) for _ in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda i: call(local[i % clients], i), range(requests)))
    wall = time.perf_counter() - start
    for client in local:
        client.close()
    ok = [r for r in results if r["status"] == 200]
    return {
        "clients": clients, "requests": requests, "per_s": round(requests / wall, 2),
        **_percentiles([r["seconds"] for r in ok] or [0.0]),
        "5xx": sum(1 for r in results if int(r["status"]) >= 500),
        "other_errors": sum(1 for r in results if 400 <= int(r["status"]) < 500),
        "results": results,
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(store: Path, log: Path, *options: str, address: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """A `vlmsearch serve` subprocess with `options`, once healthy, and its URL at `address`."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "vlmsearch.cli", "--store", str(store), "serve", "--port", str(port), *options],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://{address}:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(1)
    process.kill()
    raise RuntimeError("the server did not start in 300 s")


def _memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run(quick: bool = False) -> dict:
    levels = (1, 4) if quick else (1, 4, 16)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = {p.stem: p for p in collection.photos(root / "photos")}
        collection.wordnet_documents(root / "docs", WordNet())
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "vlmsearch.cli", "--store", str(root / "store"), "index", str(root / "photos"),
                        str(root / "docs"), "--json"], check=True, env=env, capture_output=True)  # fmt: skip
        process, url = _serve(root / "store", root / "serve.log")
        try:
            with httpx.Client(base_url=url, timeout=600) as client:  # warm: first calls of every model
                for case in ASKS:
                    _ask(client, photos, case)
            alone = _load(url, 1, 2 * len(ASKS), lambda c, i: _ask(c, photos, ASKS[i % len(ASKS)]))
            search = [_load(url, n, 40 * n if not quick else 10 * n, lambda c, i: _search(c, SEARCHES[i % len(SEARCHES)])) for n in levels]
            ask = [alone] + [_load(url, n, n * (1 if quick else 2), lambda c, i: _ask(c, photos, ASKS[i % len(ASKS)])) for n in levels[1:]]
            memory = _memory_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
    lone = alone["results"]
    result = {
        "search": [{k: v for k, v in r.items() if k != "results"} for r in search],
        "ask": [{k: v for k, v in r.items() if k != "results"} for r in ask],
        "lone_ask": {
            "first_text": _percentiles([r["first_text"] for r in lone]),
            "whole": _percentiles([r["seconds"] for r in lone]),
            "request_over_stages": round(sum(r["seconds"] for r in lone) / sum(r["stages"] for r in lone), 3),
        },
        "server_rss_mb": memory,
    }
    rows = [{"what": f"{name} x{r['clients']}", **{k: v for k, v in r.items() if k != "clients"}}
            for name, runs in (("search", result["search"]), ("ask llm", result["ask"])) for r in runs]  # fmt: skip
    print_table("vlmsearch serve on localhost, offline profile, warm", rows)
    print(f"lone ask: first words p50 {result['lone_ask']['first_text']['p50_ms'] / 1000:.2f} s, whole p50 "
          f"{result['lone_ask']['whole']['p50_ms'] / 1000:.2f} s, request / sum of stages = {result['lone_ask']['request_over_stages']}; "
          f"server RSS {memory} MB")  # fmt: skip
    return result


if __name__ == "__main__":
    from benchmarks.common import write_json

    print(write_json("serve", run(quick="--quick" in sys.argv)))
