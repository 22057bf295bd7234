"""The `transformers` backend on tiny models built here (weights are random: we test the code path,
shapes and contracts, not the quality)."""

import numpy as np
import pytest
import tiny_models
from conftest import skimage_photo

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingWeightsError
from vlmsearch.models import Message, build_model, complete
from vlmsearch.models.protocols import GenerationOptions


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "lm": tiny_models.causal_lm(root / "lm"),
        "bert": tiny_models.bert(root / "bert"),
        "siglip": tiny_models.siglip(root / "siglip"),
    }


def test_causal_lm_chat_streams_and_respects_max_tokens(tiny, tmp_path):
    chat = build_model("chat", ModelSpec(backend="transformers", model=str(tiny["lm"])), tmp_path)
    assert chat.accepts_images is False
    messages = [Message("system", "answer the question"), Message("user", "how long do cats live")]
    options = GenerationOptions(max_tokens=6)
    streamed = list(chat.stream(messages, options))
    text = "".join(streamed)
    assert text == complete(chat, messages, options)  # greedy: reproducible
    assert len(chat._tokenizer(text, add_special_tokens=False).input_ids) <= 6


def test_text_embedder_from_a_local_directory(tiny, tmp_path):
    embedder = build_model("text_embedder", ModelSpec(backend="hf", model=str(tiny["bert"])), tmp_path)
    vectors = embedder.embed_texts(["a cat photo", "a red car", "a cat photo"])
    assert vectors.shape == (3, embedder.dim) == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])


def test_siglip_image_features_and_zero_shot_tags(tiny, tmp_path):
    spec = ModelSpec(backend="transformers", model=str(tiny["siglip"]), options={"labels": ["cat", "coffee", "rocket"]})
    model = build_model("tagger", spec, tmp_path)
    photos = [skimage_photo("chelsea"), skimage_photo("coffee")]
    vectors = model.embed_images(photos)
    assert vectors.shape == (2, model.dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    tags = model.tag(photos, top_k=2)
    assert [len(t) for t in tags] == [2, 2]
    assert all(t.label in {"cat", "coffee", "rocket"} and 0.0 <= t.score <= 1.0 for row in tags for t in row)
    text_vectors = model.embed_texts(["cat", "coffee"])
    assert text_vectors.shape == (2, model.dim)  # a joint space: texts and images side by side


def test_hub_id_without_network_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE=1.*hf download"):
        build_model("chat", ModelSpec(backend="transformers", model="Qwen/Qwen2.5-1.5B-Instruct"), tmp_path)


def test_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="not a loadable model directory"):
        build_model("chat", ModelSpec(backend="transformers", model=str(tmp_path / "empty")), tmp_path)
