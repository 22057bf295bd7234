"""The `openai` backend against a real OpenAI-compatible server on localhost: llama-cpp-python's
server serving the bundled Qwen GGUF, started here."""

import base64
import io
import socket
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from conftest import skimage_photo
from vlmsearch.config import ModelSpec, Settings
from vlmsearch.errors import ModelServerError
from vlmsearch.models import Message, build_model, complete
from vlmsearch.models.assets import qwen_gguf
from vlmsearch.models.openai_chat import image_data_url
from vlmsearch.models.protocols import GenerationOptions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("llama.cpp server did not start in 120 s")
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_chat_through_a_local_openai_compatible_server(server, tmp_path):
    spec = ModelSpec(backend="openai", model="qwen-local", options={"base_url": server, "accepts_images": False})
    chat = build_model("chat", spec, tmp_path)
    messages = [
        Message("system", "Answer with one word, using only the context."),
        Message("user", "Context: The capital of Zorbland is Quimby.\nQuestion: What is the capital of Zorbland?"),
    ]
    pieces = list(chat.stream(messages, GenerationOptions(max_tokens=16)))
    assert len(pieces) > 1 and "Quimby" in "".join(pieces)


def test_unreachable_server_is_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    chat = build_model("chat", ModelSpec(backend="openai", model="m", options={"base_url": url}), tmp_path)
    with pytest.raises(ModelServerError, match=f"cannot reach the model server at {url}"):
        complete(chat, [Message("user", "hello")])


def test_server_error_status_is_reported(server, tmp_path):
    # The server runs with a 2048-token context: a longer prompt fails, and we say so plainly.
    chat = build_model("chat", ModelSpec(backend="openai", model="qwen-local", options={"base_url": server}), tmp_path)
    # llama.cpp's server ends a streamed reply silently here (a plain request gets a 400).
    with pytest.raises(ModelServerError, match="ended the stream without finishing the reply"):
        complete(chat, [Message("user", "cat " * 5000)], GenerationOptions(max_tokens=4))


def test_images_travel_as_png_data_urls():
    url = image_data_url(skimage_photo("coffee"))
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (600, 400)
