"""`vlmsearch serve` on localhost with the real offline models: the API, streaming, the OpenAI-compatible
endpoint through the official `openai` client, index jobs, limits and errors."""

import base64
import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import skimage_photo, start_server, text_image


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


CAT = png(skimage_photo("chelsea"))


def test_ask_streams_stages_then_the_answer_with_sources(server):
    response = httpx.post(f"{server}/v1/ask", data={"question": "how long do animals like this live?", "pipeline": "llm"},
                          files={"image": ("cat.png", CAT, "image/png")}, timeout=120)  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "stage" and kinds[-1] == "answer" and "token" in kinds
    assert [data["stage"] for kind, data in events if kind == "stage"] == ["visual_search", "rephrase", "retrieve", "generate"]
    visual = events[0][1]["output"]
    assert visual["tags"] and "similar" in visual and visual["similar"][0]["id"]  # the photo itself is indexed
    answer = events[-1][1]
    assert "12 to 18" in answer["answer"] and answer["citations"][0]["source"].endswith("cats.md")
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    assert streamed.strip() == answer["answer"]
    # The unfinished sentence shows before any checked one, and grows as the model writes it.
    drafts = [data["text"] for kind, data in events[: kinds.index("token")] if kind == "draft"]
    assert drafts and drafts[0] and all(later.startswith(earlier) for earlier, later in zip(drafts, drafts[1:]))


def test_ask_without_streaming_is_the_cli_json(server):
    response = httpx.post(f"{server}/v1/ask?stream=false", data={"question": "what is espresso made of?"}, timeout=120)
    body = response.json()
    assert response.status_code == 200 and set(body) == {"answer", "citations", "pipeline", "trace"}
    assert any(c["source"].endswith("espresso.md") for c in body["citations"]) and body["citations"][0]["id"]


def test_search_images_passages_thumbnails(server):
    hits = httpx.get(f"{server}/v1/search", params={"q": "cat", "k": 3}).json()["hits"]
    assert hits[0]["path"].endswith("chelsea.png")
    thumb = httpx.get(server + hits[0]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    full = httpx.get(server + hits[0]["full"])
    assert full.status_code == 200 and full.content[:8] == b"\x89PNG\r\n\x1a\n"
    similar = httpx.post(f"{server}/v1/search", files={"image": ("q.png", CAT, "image/png")}, data={"k": "2"}).json()["hits"]
    assert similar[0]["path"].endswith("chelsea.png") and similar[0]["score"] > 0.99
    passages = httpx.get(f"{server}/v1/passages", params={"q": "how is espresso made"}).json()["hits"]
    assert passages[0]["source"].endswith("espresso.md")
    assert httpx.get(f"{server}/v1/passages/{passages[0]['id']}").json()["text"] == passages[0]["text"]


def test_models_and_health(server):
    models = httpx.get(f"{server}/v1/models").json()
    assert {m["id"] for m in models["data"]} >= {"vlmsearch-llm", "vlmsearch-vlm"} and models["profile"] == "offline"
    health = httpx.get(f"{server}/healthz").json()
    assert health["status"] == "ok" and health["images"] >= 3
    from vlmsearch import __version__

    assert health["version"] == __version__


def test_openai_client_chats_with_an_image(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused-on-localhost", timeout=120)
    assert "vlmsearch-llm" in [m.id for m in client.models.list()]
    image = "data:image/png;base64," + base64.b64encode(CAT).decode()
    messages = [{"role": "user", "content": [{"type": "text", "text": "how long do animals like this live?"},
                                             {"type": "image_url", "image_url": {"url": image}}]}]  # fmt: skip
    reply = client.chat.completions.create(model="vlmsearch-llm", messages=messages)
    content = reply.choices[0].message.content
    assert "12 to 18" in content and "Sources:\n[1] [cats.md](" in content and "/v1/passages/" in content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(model="vlmsearch-llm", messages=messages, stream=True)]
    assert "12 to 18" in "".join(pieces) and len(pieces) > 2
    with pytest.raises(Exception, match="unknown model"):
        client.chat.completions.create(model="gpt-4", messages=messages)


def test_openai_client_holds_a_conversation_with_the_image_only_in_turn_one(server):
    """What Open WebUI and other chat clients do: send the whole conversation each time."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused-on-localhost", timeout=120)
    image = "data:image/png;base64," + base64.b64encode(CAT).decode()
    messages = [{"role": "user", "content": [{"type": "text", "text": "what kind of animal is this?"},
                                             {"type": "image_url", "image_url": {"url": image}}]}]  # fmt: skip
    first = client.chat.completions.create(model="vlmsearch-llm", messages=messages).choices[0].message.content
    assert "cat" in first.lower() and "[cats.md](" in first
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "how long do they usually live?"}]
    second = client.chat.completions.create(model="vlmsearch-llm", messages=messages).choices[0].message.content
    assert "12 to 18" in second and "[cats.md](" in second


def test_ask_takes_the_earlier_turns_and_reuses_what_it_saw_in_the_image(server):
    first = httpx.post(f"{server}/v1/ask?stream=false", data={"question": "what kind of animal is this?", "pipeline": "llm"},
                       files={"image": ("cat.png", CAT, "image/png")}, timeout=120).json()  # fmt: skip
    image = "data:image/png;base64," + base64.b64encode(CAT).decode()
    history = [{"question": "what kind of animal is this?", "answer": first["answer"], "citations": first["citations"], "image": image}]
    response = httpx.post(f"{server}/v1/ask?stream=false", timeout=120,
                          data={"question": "how long do they usually live?", "pipeline": "llm", "history": json.dumps(history)})  # fmt: skip
    answer = response.json()
    assert response.status_code == 200 and "12 to 18" in answer["answer"], answer["answer"]
    steps = {step["stage"]: step for step in answer["trace"]}
    assert steps["conversation"]["output"]["question"] == "how long do Domestic cats usually live?"
    assert steps["visual_search"]["cached"] and steps["visual_search"]["ms"] < 50  # seen in turn one
    # A new subject: the follow-up's "it" after a turn about espresso stands for espresso, and the cat is out of it.
    history.append({"question": "what is espresso made of?", "answer": "It is made from finely ground coffee beans [1].",
                    "citations": [{"n": 1, "source": "espresso.md", "text": "Espresso: Espresso is made by forcing hot water"}]})  # fmt: skip
    later = httpx.post(f"{server}/v1/ask?stream=false", timeout=120,
                       data={"question": "how is it made?", "history": json.dumps(history)}).json()  # fmt: skip
    assert "visual_search" not in {step["stage"] for step in later["trace"]} and "espresso.md" in str(later["citations"])


def test_a_conversation_over_the_limits_is_refused_clearly(server):
    def error(history, status: int) -> str:
        response = httpx.post(f"{server}/v1/ask", data={"question": "and then?", "history": history}, timeout=60)
        assert response.status_code == status, response.text
        return response.json()["error"]["message"]

    assert "limit is 50" in error(json.dumps([{"question": "q", "answer": "a"}] * 51), 400)
    assert "not valid JSON" in error("[{", 400)
    assert "question" in error(json.dumps([{"answer": "no question"}]), 400)
    assert "limit" in error(json.dumps([{"question": "q", "answer": "a" * 210_000}]), 413)
    from openai import BadRequestError, OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused-on-localhost", timeout=60)
    with pytest.raises(BadRequestError, match="last message must be the user"):
        client.chat.completions.create(model="vlmsearch-llm", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])


def test_index_job_reports_progress_and_failures(server):
    files = [
        ("files", ("penguins.md", b"# Penguins\nPenguins are flightless seabirds of the southern hemisphere.", "text/markdown")),
        ("files", ("sign.png", png(text_image("PENGUIN")), "image/png")),
        ("files", ("fake.png", b"this is not a picture at all", "image/png")),  # a text file named .png: indexed as text
        ("files", ("blob.bin", bytes(range(256)) * 4, "application/octet-stream")),
    ]
    response = httpx.post(f"{server}/v1/index", files=files, timeout=60)
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_type"  # the binary blob
    response = httpx.post(f"{server}/v1/index", files=files[:3], timeout=60)
    assert response.status_code == 202
    job = response.json()
    deadline = time.monotonic() + 120
    while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = httpx.get(f"{server}/v1/jobs/{job['id']}").json()
    assert job["state"] == "done", job
    assert job["report"]["added"] == 3 and job["done"] == job["total"] == 3
    hits = httpx.get(f"{server}/v1/passages", params={"q": "flightless seabirds"}).json()["hits"]
    assert "penguins" in hits[0]["source"]
    assert httpx.get(f"{server}/v1/jobs/unknown").status_code == 404


def test_bad_requests_get_the_right_status_in_one_shape(server):
    def error(response: httpx.Response, status: int, code: str) -> str:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"} and response.json()["error"]["code"] == code
        return response.json()["error"]["message"]

    assert "pipeline" in error(httpx.post(f"{server}/v1/ask", data={"question": "hi there x", "pipeline": "nope"}), 400, "bad_config")
    error(httpx.post(f"{server}/v1/ask", data={"question": "what?"}, files={"image": ("x.png", b"GIF89a-not-really", "image/png")}), 415, "unsupported_type")
    error(httpx.post(f"{server}/v1/ask", data={"question": "  "}), 400, "bad_input")
    error(httpx.post(f"{server}/v1/ask", data={}), 422, "invalid_request")
    huge = b"0" * (21 * 1024 * 1024)
    error(httpx.post(f"{server}/v1/search", files={"image": ("big.png", huge, "image/png")}, timeout=60), 413, "too_large")
    error(httpx.post(f"{server}/v1/index", json={"paths": ["/etc"]}), 403, "forbidden")
    for path in ("/v1/images/..%2f..%2fetc%2fpasswd", "/v1/images/../../etc/passwd", "/v1/passages/..%2f..", "/static/..%2f..%2fcli%2f__init__.py"):
        assert httpx.get(server + path).status_code == 404, path
    assert httpx.get(f"{server}/healthz").json()["status"] == "ok"  # still serving


def test_concurrent_requests_all_succeed(server):
    with ThreadPoolExecutor(8) as pool:
        searches = list(pool.map(lambda q: httpx.get(f"{server}/v1/search", params={"q": q}, timeout=120), ["cat", "coffee", "rocket"] * 4))
        asks = list(pool.map(lambda q: httpx.post(f"{server}/v1/ask?stream=false", data={"question": q}, timeout=300),
                             ["what is espresso made of?", "how long do cats live?", "how does a rocket work in space?"]))  # fmt: skip
    assert all(r.status_code == 200 for r in searches + asks)
    assert all(r.json()["answer"] for r in asks)


def test_a_key_is_required_beyond_localhost_and_checked(server_store, tmp_path):
    refused = subprocess.run([sys.executable, "-m", "vlmsearch.cli", "--store", str(server_store), "serve", "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 1 and "API key" in refused.stderr
    process, url = start_server(server_store, tmp_path, "--api-key", "s3cret")
    try:
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{url}/v1/search", params={"q": "cat"}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200 and httpx.get(f"{url}/").status_code == 200  # page and health stay open
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_extract_detect_and_ocr_endpoints(server):
    sign = png(text_image("TEL 0171 555 0192"))
    extracted = httpx.post(f"{server}/v1/extract", data={"fields": "phone, email"}, files={"image": ("sign.png", sign, "image/png")}, timeout=120)
    assert extracted.status_code == 200, extracted.text
    data = extracted.json()["data"]
    assert "01715550192" in data["phone"].replace(" ", "") and data["email"] is None and extracted.json()["sources"] == {"phone": "image:text"}
    schema = json.dumps({"type": "object", "properties": {"phone": {"type": "string"}, "open": {"type": "boolean"}}})
    typed = httpx.post(f"{server}/v1/extract", data={"schema": schema}, files={"image": ("sign.png", sign, "image/png")}, timeout=120).json()
    assert set(typed["data"]) == {"phone", "open"} and typed["data"]["open"] in (True, False, None)
    read = httpx.post(f"{server}/v1/ocr", files={"image": ("sign.png", sign, "image/png")}, timeout=60).json()
    assert "0171" in read["text"] and read["lines"][0]["box"][2] > read["lines"][0]["box"][0]
    found = httpx.post(f"{server}/v1/detect", data={"labels": "cat, dog, car"}, files={"image": ("cat.png", CAT, "image/png")}, timeout=60).json()
    assert found["width"] == 451 and found["objects"] and found["objects"][0]["label"] == "cat"
    for data, message in (({}, "give the fields"), ({"schema": "{"}, "not JSON"), ({"schema": '{"type": "array"}'}, "must describe an object")):
        refused = httpx.post(f"{server}/v1/extract", data=data, files={"image": ("sign.png", sign, "image/png")}, timeout=60)
        assert refused.status_code == 400 and message in refused.json()["error"]["message"], refused.text


def test_openai_structured_outputs_follow_the_schema(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused-on-localhost", timeout=120)
    image = "data:image/png;base64," + base64.b64encode(CAT).decode()
    messages = [{"role": "user", "content": [{"type": "text", "text": "how long do animals like this live?"},
                                             {"type": "image_url", "image_url": {"url": image}}]}]  # fmt: skip
    schema = {
        "type": "object",
        "properties": {"lifespan": {"type": "string"}, "weight_kg": {"type": "number"}},
        "required": ["lifespan", "weight_kg"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "facts", "schema": schema, "strict": True}}
    data = json.loads(client.chat.completions.create(model="vlmsearch-llm", messages=messages, response_format=fmt).choices[0].message.content)
    assert set(data) == {"lifespan", "weight_kg"} and "12" in data["lifespan"] and data["weight_kg"] is None
    plain = client.chat.completions.create(model="vlmsearch-llm", messages=messages, response_format={"type": "json_object"}, stream=True)
    answer = json.loads("".join(c.choices[0].delta.content or "" for c in plain))
    assert "12 to 18" in answer["answer"] and answer["sources"][0].startswith(f"{server}/v1/passages/")
    with pytest.raises(Exception, match="json_schema.schema"):
        client.chat.completions.create(model="vlmsearch-llm", messages=messages, response_format={"type": "json_schema", "json_schema": {"name": "x"}})
