"""Hostile files: a generated corpus (truncated and bit-flipped images and PDFs in every format we
read, giant dimensions, decompression and zip bombs, reference loops, scripts in HTML, wrong
extensions both ways, empty files, link loops, device links, FIFOs, unreadable files, names that are
not UTF-8 or hold newlines, very long names, deep folders), run three ways:

1. through the decoders ingest uses, one file at a time in worker processes with a memory cap and a
   time limit: every outcome is a result or one of our errors; crashes, hangs and memory are counted;
2. through `vlmsearch index` into a store that already holds a collection: the run finishes, every
   file is accounted for, what was stored before is intact and `doctor` finds nothing wrong;
3. through the server's uploads (`POST /v1/search`, `POST /v1/index`): no 5xx, still healthy after.

    python -m benchmarks.fuzz [--files 1000]      (tests/test_reliability.py runs a small corpus)
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from PIL import Image

IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp"}
WORKER_MEMORY = 3 * 2**30  # address space per decoding worker: a bomb that got through would hit it
FILE_SECONDS = 60  # a file slower than this counts as a hang


# --- the corpus ---------------------------------------------------------------------------------


def _seed_images() -> list[Image.Image]:
    from skimage import data

    from vlmsearch.demo.collection import OPENCLIPART

    seeds = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee()).resize((300, 200)), Image.fromarray(data.camera())]
    drawings = sorted(OPENCLIPART.rglob("*.png"))[::997][:1] if OPENCLIPART.is_dir() else []
    seeds += [Image.open(p).convert("RGBA").resize((256, 256)) for p in drawings]
    return seeds


def _encode(image: Image.Image, format: str) -> bytes:
    out = io.BytesIO()
    if format in ("JPEG", "BMP") and image.mode == "RGBA":
        image = image.convert("RGB")
    image.save(out, format=format)
    return out.getvalue()


def text_pdf(text: str) -> bytes:
    """A minimal PDF with a text layer, written by hand (offsets computed, so it is valid)."""
    stream = f"BT /F1 18 Tf 40 700 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf(objects)


def pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer_extra, xref)
    return bytes(out)


def _hostile_pdfs() -> dict[str, bytes]:
    bomb = zlib.compress(b" " * (512 * 2**20), 9)  # 512 MiB of spaces in ~0.5 MiB
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"
    return {
        "zip_bomb.pdf": pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page,
                              b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb + b"\nendstream"]),
        "pages_loop.pdf": pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
                                b"<< /Type /Pages /Kids [2 0 R] /Parent 2 0 R /Count 1 >>"]),
        "parent_loop.pdf": pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 3 0 R >>",
                                 b"<< /Type /Page /Parent 2 0 R /Contents 3 0 R >>"]),
        "xref_prev_loop.pdf": pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"], b"/Prev 9 "),
        "self_reference.pdf": pdf([b"<< /Type /Catalog /Pages 1 0 R >>"]),
        "million_pages.pdf": pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1000000 >>", page]),
    }  # fmt: skip


def _giant_headers(png: bytes, jpeg: bytes, gif: bytes, bmp: bytes) -> dict[str, bytes]:
    """Real files whose headers claim absurd sizes (the pixels are not there)."""

    def png_size(width: int, height: int) -> bytes:
        ihdr = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + png[24:29]
        return png[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + png[33:]

    sof = max(jpeg.find(b"\xff\xc0"), jpeg.find(b"\xff\xc2"))
    jpeg_giant = jpeg[: sof + 5] + (65500).to_bytes(2, "big") * 2 + jpeg[sof + 9 :]
    return {
        "giant_2g.png": png_size(2**31 - 1, 2**31 - 1), "giant_100k.png": png_size(100_000, 100_000),
        "zero.png": png_size(0, 0), "giant.jpg": jpeg_giant,
        "giant.gif": gif[:6] + (65535).to_bytes(2, "little") * 2 + gif[10:],
        "giant.bmp": bmp[:18] + (2**30).to_bytes(4, "little") + (-(2**30)).to_bytes(4, "little", signed=True) + bmp[26:],
        "bomb_1bit.png": _encode(Image.new("1", (30_000, 30_000)), "PNG"),
    }  # fmt: skip


def _texts() -> dict[str, bytes]:
    script = "<script>alert(1)</script><img src=x onerror=alert(2)><style>body{display:none}</style>"
    return {
        "scripts.html": f"<html><head>{script}</head><body><h1>Title</h1><p>Visible text.</p>{script}</body></html>".encode(),
        "nested.html": b"<div>" * 20_000 + b"deep" + b"</div>" * 20_000,
        "unclosed.html": b"<html><body><p>open <b>bold <i>italic <table><tr><td>cell" * 500,
        "one_line.html": b"<p>" + b"word " * 400_000 + b"</p>",
        "latin1.html": "<p>caf\xe9 cr\xe8me</p>".encode("latin-1"),
        "binary.txt": os.urandom(4096),
        "nul_late.md": b"# Heading\n\n" + b"text " * 3000 + b"\x00" * 10,
        "no_spaces.txt": b"x" * 2_000_000,
        "whitespace.md": b" \n\t\r\n" * 1000,
        "bom_utf16.txt": "\ufeffsome text in UTF-16".encode("utf-16"),
        "headings_only.md": b"# a\n## b\n### c\n" * 2000,
        "long_heading.md": b"# " + b"h" * 100_000 + b"\nbody text.\n",
        "control_chars.txt": bytes(range(1, 32)) * 100 + b"after the noise, words.",
    }  # fmt: skip


def _mutations(data: bytes, rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        kind = i % 3
        if kind == 0:  # truncated somewhere, the header often kept
            out.append((f"trunc{i}", data[: rng.randrange(1, max(2, len(data)))]))
        elif kind == 1:  # bits flipped, often in the header where parsers make decisions
            flipped = bytearray(data)
            for _ in range(rng.choice((1, 4, 16, 64))):
                at = rng.randrange(min(len(flipped), 256)) if rng.random() < 0.5 else rng.randrange(len(flipped))
                flipped[at] ^= 1 << rng.randrange(8)
            out.append((f"flip{i}", bytes(flipped)))
        else:  # a block overwritten with random bytes
            start = rng.randrange(len(data))
            out.append((f"block{i}", data[:start] + rng.randbytes(min(512, len(data) - start)) + data[start + 512 :]))
    return out


def build_corpus(folder: Path, files: int = 1000, seed: int = 0) -> list[Path]:
    """At least `files` hostile or odd files under `folder` (deterministic for a seed)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str | bytes, data: bytes, where: Path = folder) -> None:
        path = Path(os.fsdecode(os.path.join(os.fsencode(where), os.fsencode(name))))
        path.write_bytes(data)
        written.append(path)

    seeds = _seed_images()
    valid = {(n, fmt): _encode(image, fmt) for n, image in enumerate(seeds) for fmt in IMAGE_FORMATS}
    pdfs = {"text": text_pdf("Okapis live in the Ituri forest"), "scan": _encode(seeds[0].convert("RGB"), "PDF")}
    for name, data in {**_hostile_pdfs(), **_texts()}.items():
        put(name, data)
    png, jpeg, gif, bmp = (valid[0, f] for f in ("PNG", "JPEG", "GIF", "BMP"))
    for name, data in _giant_headers(png, jpeg, gif, bmp).items():
        put(name, data)
    for (n, fmt), data in valid.items():  # wrong extensions both ways
        put(f"image{n}_{fmt.lower()}_named.pdf", data)
        put(f"image{n}_{fmt.lower()}_named.md", data)
    for kind, data in pdfs.items():
        put(f"{kind}_pdf_named.png", data)
        put(f"{kind}_pdf_named.jpg", data)
    for suffix in sorted({*IMAGE_FORMATS.values(), ".jpeg", ".tiff", ".pdf", ".txt", ".md", ".html", ".htm", ".markdown"}):
        put(f"empty{suffix}", b"")
        put(f"random{suffix}", rng.randbytes(rng.randrange(1, 5000)))
    names = [b"caf\xe9.png", b"\xff\xfe.jpg", b"bad\x80utf8.md", "new\nline.png", "tab\there.png", "-rf.png",
             "quote'\";$(reboot).png", "emoji_\U0001f431.png", "x" * 250 + ".png", " leading space.png"]  # fmt: skip
    for name in names:
        put(name, png)
    deep = folder.joinpath(*[f"d{i}" for i in range(60)])
    deep.mkdir(parents=True)
    put("deep.png", png, deep)
    links = folder / "links"
    links.mkdir()
    for name, target in (("loop_a.png", "loop_b.png"), ("loop_b.png", "loop_a.png"), ("self.png", "self.png"),
                         ("zero.txt", "/dev/zero"), ("urandom.jpg", "/dev/urandom"), ("memory.txt", "/proc/self/mem"),
                         ("dangling.md", "absent.md"), ("folder_loop", ".")):  # fmt: skip
        (links / name).symlink_to(target)
        written.append(links / name)
    os.mkfifo(folder / "fifo.txt")  # reading it would block forever
    written.append(folder / "fifo.txt")
    locked = folder / "unreadable.png"
    locked.write_bytes(png)
    locked.chmod(0)  # (root reads it anyway)
    written.append(locked)
    sources = [(f"image{n}_{fmt.lower()}{IMAGE_FORMATS[fmt]}", d) for (n, fmt), d in valid.items()]
    sources += [(f"{kind}.pdf", d) for kind, d in pdfs.items()]
    mutated = folder / "mutated"
    mutated.mkdir()
    per_source = max(1, -(-(files - len(written) - len(sources)) // len(sources)))
    for name, data in sources:
        put(name, data)
        stem, suffix = os.path.splitext(name)
        for label, variant in _mutations(data, rng, per_source):
            put(f"{stem}_{label}{suffix}", variant, mutated)
    return written


# --- 1. the decoders, one file at a time --------------------------------------------------------


def _decode_one(path: str) -> dict:
    """What ingest's decoding does to one file, in a worker: outcome, seconds, the worker's peak RSS."""
    from vlmsearch.errors import BadInputError
    from vlmsearch.images import decode_image
    from vlmsearch.ingest.discover import kind_of
    from vlmsearch.ingest.documents import extract_text, pdf_pages, scanned_page_images

    start = time.perf_counter()
    file = Path(path)
    try:
        data = file.read_bytes()
        if kind_of(file) == "image":
            decode_image(data, path, 64_000_000, 4096)
        elif file.suffix.lower() == ".pdf":
            pages = pdf_pages(file, data)
            scanned_page_images(file, data, [n for n, t in enumerate(pages) if not t.strip()][:50])
        else:
            extract_text(file, data)
        outcome = "read"
    except (BadInputError, OSError) as exc:
        outcome = f"refused: {type(exc).__name__}"
    except BaseException as exc:  # noqa: BLE001 (counting them is the point)
        outcome = f"CRASH: {type(exc).__name__}: {str(exc)[:200]}"
    return {"path": path, "outcome": outcome, "seconds": time.perf_counter() - start,
            "worker_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))


def decode_all(files: list[Path]) -> dict:
    from vlmsearch.ingest.discover import kind_of

    regular = [str(f) for f in files if kind_of(f) and f.is_file() and not f.is_symlink()]
    results, hangs = [], []
    context = multiprocessing.get_context("spawn")
    pending = list(regular)
    while pending:
        with context.Pool(2, initializer=_cap_memory, maxtasksperchild=200) as pool:
            jobs = [(p, pool.apply_async(_decode_one, (p,))) for p in pending]
            pending = []
            for n, (path, job) in enumerate(jobs):
                try:
                    results.append(job.get(FILE_SECONDS))
                except multiprocessing.TimeoutError:
                    hangs.append(path)
                    pending = [p for p, _ in jobs[n + 1 :]]  # a fresh pool for the rest
                    break
    crashes = [r for r in results if r["outcome"].startswith("CRASH")]
    return {
        "files": len(regular), "read": sum(r["outcome"] == "read" for r in results),
        "refused": sum(r["outcome"].startswith("refused") for r in results),
        "crashes": len(crashes), "crash_examples": crashes[:10], "hangs": hangs,
        "max_seconds": round(max(r["seconds"] for r in results), 3),
        "slowest": sorted(results, key=lambda r: -r["seconds"])[:3],
        "worker_peak_mb": round(max(r["worker_peak_mb"] for r in results), 1),
    }  # fmt: skip


# --- 2. through `vlmsearch index` ---------------------------------------------------------------


def _cli(store: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "vlmsearch.cli", "--store", str(store), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)  # fmt: skip


def _rows(store: Path) -> dict[str, dict[str, str]]:
    """Every stored row's id -> its non-vector content, to show nothing stored before changed."""
    import lancedb

    db = lancedb.connect(str(store))
    return {name: {r["id"]: json.dumps({k: v for k, v in r.items() if not isinstance(v, list | bytes) or k == "tags"},
                                       sort_keys=True, default=str)
                   for r in db.open_table(name).search().limit(None).to_list()}
            for name in db.list_tables().tables}  # fmt: skip


def index_corpus(store: Path, corpus: Path) -> dict:
    """Index the corpus into a store that holds a collection already; check the run and the store."""
    before = _rows(store)
    started = time.perf_counter()
    result = _cli(store, "index", str(corpus), "--json")
    seconds = time.perf_counter() - started
    report = json.loads(result.stdout) if result.returncode in (0, 1) and result.stdout.strip() else None
    after = _rows(store)
    intact = all(after.get(table, {}).get(id_) == row for table, rows in before.items() for id_, row in rows.items())
    doctor = json.loads(_cli(store, "doctor", "--json").stdout)
    return {
        "exit_code": result.returncode, "seconds": round(seconds, 1), "traceback": "Traceback" in result.stderr,
        "added": report and report["added"], "unchanged": report and report["unchanged"],
        "failed": report and len(report["failed"]), "skipped": report and report["skipped"],
        "warnings": report and len(report["warnings"]),
        "failures_without_reason": report and sum(not f["error"] for f in report["failed"]),
        "stored_before_intact": intact, "doctor_errors": [p for p in doctor["problems"] if p["severity"] == "error"],
        "failure_examples": report and report["failed"][:8],
    }  # fmt: skip


# --- 3. through the server's uploads ------------------------------------------------------------


def upload_corpus(store: Path, files: list[Path], log: Path) -> dict:
    import httpx

    from benchmarks.serve import _memory_mb, _serve

    process, url = _serve(store, log)
    statuses: dict[str, dict[int, int]] = {"search": {}, "index": {}}
    examples: dict[str, str] = {}
    try:
        uploads = [f for f in files if f.is_file() and not f.is_symlink() and os.access(f, os.R_OK)]
        jobs = []
        with httpx.Client(base_url=url, timeout=300) as client:
            for f in uploads:  # each file as an image to search by (the decoder path of /v1/ask too), and to index
                name = os.fsencode(f.name).decode("utf-8", "replace")
                for route, response in (
                    ("search", client.post("/v1/search", files={"image": (name, f.read_bytes())})),
                    ("index", client.post("/v1/index", files=[("files", (name, f.read_bytes()))])),
                ):
                    statuses[route][response.status_code] = statuses[route].get(response.status_code, 0) + 1
                    if response.status_code >= 400:
                        examples.setdefault(f"{route} {response.status_code}", f"{name}: {response.json()['error']['message']}")
                    if route == "index" and response.status_code == 202:
                        jobs.append(response.json()["id"])
            outcomes = {"done": 0, "failed files": 0, "added": 0, "unnamed failures": 0}
            for job in jobs:
                while (state := client.get(f"/v1/jobs/{job}").json())["state"] in ("queued", "running"):
                    time.sleep(0.2)
                report = state.get("report") or {}
                outcomes["done"] += state["state"] == "done"
                outcomes["added"] += report.get("added", 0)
                outcomes["failed files"] += len(report.get("failed", []))
                outcomes["unnamed failures"] += sum(not f.get("error") for f in report.get("failed", []))
            healthy = client.get("/healthz").status_code == 200
        memory = _memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    every = [code for route in statuses.values() for code, n in route.items() for _ in range(n)]
    return {"requests": len(every), "statuses": {route: {str(k): v for k, v in sorted(codes.items())} for route, codes in statuses.items()},
            "5xx": sum(code >= 500 for code in every), "index_jobs": len(jobs), "jobs": outcomes, "examples": examples,
            "healthy_after": healthy, "server_rss_mb": memory}  # fmt: skip


def run(files: int = 1000, seed: int = 0, server: bool = True) -> dict:
    from vlmsearch.demo import collection

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = build_corpus(root / "corpus", files, seed)
        decoded = decode_all(corpus)
        collection.photos(root / "good")
        store = root / "store"
        _cli(store, "index", str(root / "good"), "--json")
        indexed = index_corpus(store, root / "corpus")
        uploaded = upload_corpus(store, corpus, root / "serve.log") if server else None
        for locked in (root / "corpus").rglob("unreadable.png"):
            locked.chmod(0o600)  # so the folder can be removed
    return {"corpus_files": len(corpus), "decoders": decoded, "index": indexed, "server": uploaded}


def main() -> None:
    from benchmarks.common import print_table, write_json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args.files, args.seed)
    d, i, s = result["decoders"], result["index"], result["server"]
    print_table(f"{result['corpus_files']} hostile files", [
        {"what": "decoders, a file at a time", "files": d["files"], "read": d["read"], "refused": d["refused"],
         "crashes": d["crashes"], "hangs": len(d["hangs"]), "slowest s": d["max_seconds"], "peak MB": d["worker_peak_mb"]},
        {"what": "vlmsearch index (into a store in use)", "files": result["corpus_files"], "read": i["added"],
         "refused": i["failed"], "crashes": int(i["exit_code"] not in (0, 1) or i["traceback"]), "slowest s": i["seconds"],
         "stored before intact": i["stored_before_intact"], "doctor errors": len(i["doctor_errors"])},
        {"what": "server uploads", "files": s["requests"], "crashes": s["5xx"], "healthy after": s["healthy_after"],
         "peak MB": s["server_rss_mb"]},
    ])  # fmt: skip
    print(f"results: {write_json('fuzz', result)}")


if __name__ == "__main__":
    main()
