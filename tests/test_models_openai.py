"""The `openai` backend against a real OpenAI-compatible server on localhost: llama-cpp-python's
server serving the bundled Qwen GGUF, started here."""

import base64
import io

import pytest
from conftest import free_port, skimage_photo
from PIL import Image

from vlmsearch.config import ModelSpec
from vlmsearch.errors import ModelServerError
from vlmsearch.models import Message, build_model, complete
from vlmsearch.models.openai_chat import image_data_url
from vlmsearch.models.protocols import GenerationOptions


def test_chat_through_a_local_openai_compatible_server(llama_server, tmp_path):
    spec = ModelSpec(backend="openai", model="qwen-local", options={"base_url": llama_server, "accepts_images": False})
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


def test_server_error_status_is_reported(llama_server, tmp_path):
    # The server runs with a 2048-token context: a longer prompt fails, and we say so plainly.
    chat = build_model("chat", ModelSpec(backend="openai", model="qwen-local", options={"base_url": llama_server}), tmp_path)
    # llama.cpp's server ends a streamed reply silently here (a plain request gets a 400).
    with pytest.raises(ModelServerError, match="ended the stream without finishing the reply"):
        complete(chat, [Message("user", "cat " * 5000)], GenerationOptions(max_tokens=4))


def test_images_travel_as_shrunk_jpeg_data_urls():
    url = image_data_url(skimage_photo("coffee"), max_side=300)
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (300, 200) and decoded.format == "JPEG"
    assert Image.open(io.BytesIO(base64.b64decode(image_data_url(skimage_photo("coffee"), None).split(",")[1]))).size == (600, 400)
