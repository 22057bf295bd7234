"""Shared fixtures: real sample images and documents, real bundled models, stores on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CAT_FACTS = (
    "# Cats\n\nDomestic cats usually live 12 to 18 years, and some live past 20. "
    "A cat sleeps for 12 to 16 hours a day.\n\n"
    "# Espresso\n\nEspresso is coffee brewed by forcing hot water under pressure through finely ground beans.\n"
)


def skimage_photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)())


def write_docs(folder: Path, docs: dict[str, str]) -> Path:
    """Documents on disk, one file per name, in a new folder."""
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    return folder


def text_image(text: str, size=(800, 220)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    font = ImageFont.truetype(FONT, 64) if Path(FONT).exists() else ImageFont.load_default(size=64)
    ImageDraw.Draw(image).text((30, 60), text, fill="black", font=font)
    return image


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A small real collection: three photos, a sign with text, one document."""
    root = tmp_path_factory.mktemp("collection")
    (root / "photos").mkdir()
    skimage_photo("chelsea").save(root / "photos" / "chelsea.png")
    skimage_photo("coffee").save(root / "photos" / "coffee.jpg", quality=92)
    skimage_photo("rocket").save(root / "photos" / "rocket.webp")
    text_image("OPEN 9AM").save(root / "photos" / "sign.png")
    (root / "docs").mkdir()
    (root / "docs" / "facts.md").write_text(CAT_FACTS)
    return root


@pytest.fixture(scope="session")
def engine_factory():
    from vlmsearch.engine import Engine

    def make(store: Path, profile: str = "offline") -> Engine:
        return Engine.from_config(store=store, profile=profile)

    return make


@pytest.fixture(scope="session")
def indexed_store(sample_dir, tmp_path_factory, engine_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    report = engine_factory(store).index([sample_dir])
    assert report.added == 5 and not report.failed, report.to_json()
    return store


def run_cli(*args: str, timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The real installed CLI in a subprocess, as a user runs it (typing `stdin`, if given)."""
    return subprocess.run(
        [sys.executable, "-m", "vlmsearch.cli", *args], capture_output=True, text=True, timeout=timeout, input=stdin,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server on localhost, serving the bundled Qwen GGUF."""
    from vlmsearch.config import Settings
    from vlmsearch.models.assets import qwen_gguf

    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "llama-server.log"
    log = open(log_path, "wb")  # a file, not a pipe: an unread pipe fills up and stalls the server
    gguf = qwen_gguf(Settings().cache_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "qwen-local",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    wait_for_server(process, f"{url}/models", log_path)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def wait_for_server(process: subprocess.Popen, ready_url: str, log_path: Path, seconds: float = 120) -> None:
    """Poll `ready_url` until it answers 200; fail with the server's log if it dies."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"server at {ready_url} did not start in {seconds:.0f} s")


SERVER_DOCS = {
    "cats.md": "# Domestic cats\nDomestic cats usually live 12 to 18 years, and indoor cats often live longer than outdoor cats.",
    "espresso.md": "# Espresso\nEspresso is made by forcing hot water at about 9 bars of pressure through finely ground coffee beans.",
    "rockets.md": "# Rockets\nA rocket carries its own oxidiser, so its engines work in the vacuum of space.",
}


@pytest.fixture(scope="session")
def server_store(tmp_path_factory, engine_factory) -> Path:
    """A small library for the server: three documents and three photos."""
    root = tmp_path_factory.mktemp("served")
    write_docs(root / "docs", SERVER_DOCS)
    (root / "photos").mkdir()
    for name in ("chelsea", "coffee", "rocket"):
        skimage_photo(name).save(root / "photos" / f"{name}.png")
    store = root / "store"
    report = engine_factory(store).index([root / "docs", root / "photos"])
    assert report.added == 6 and not report.failed, report.to_json()
    return store


def start_server(store: Path, log_dir: Path, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmsearch.cli", "--store", str(store), "serve", "--port", str(port), *options],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for_server(process, f"{url}/healthz", log_path, seconds=180)
    return process, url


@pytest.fixture(scope="session")
def server(server_store, tmp_path_factory):
    """`vlmsearch serve` on localhost over the small library, models loaded once for every test."""
    process, url = start_server(server_store, tmp_path_factory.mktemp("server-log"))
    yield url
    process.terminate()
    process.wait(timeout=30)
