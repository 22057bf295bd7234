"""The offline profile's real models on real images and text."""

import numpy as np
import pytest
from conftest import skimage_photo, text_image
from PIL import Image, ImageOps

from vlmsearch.config import ModelSpec, Profile, Settings
from vlmsearch.errors import ConfigError, MissingWeightsError, UnknownModelError
from vlmsearch.models import Message, Models, build_model, complete
from vlmsearch.models.protocols import GenerationOptions


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return Models(Profile.load("offline"), Settings().cache_dir)


def test_tagger_recognises_real_photos(models):
    tags = models.tagger.tag([skimage_photo("chelsea"), skimage_photo("coffee")], top_k=3)
    assert "cat" in tags[0][0].label and tags[0][0].synset.startswith("n02")
    assert tags[1][0].label == "espresso" and tags[1][0].score > 0.5
    assert all(a.score >= b.score for a, b in zip(tags[0], tags[0][1:]))


def test_extreme_aspect_ratios_stay_small(models):
    from vlmsearch.models.bundled import imagenet_tensor

    slivers = [Image.new("RGB", (2, 4000), "red"), Image.new("RGB", (4000, 1), "blue")]
    assert tuple(imagenet_tensor(slivers).shape) == (2, 3, 224, 224)
    assert len(models.tagger.tag(slivers, top_k=1)) == 2


def test_padded_view_keeps_the_whole_picture_and_is_its_own_embedder():
    """fit="pad" shows the ends of a wide drawing that the centre crop cuts off; the two views are
    separate embedders (names, and their one-pass memories: the same image objects, other features)."""
    from vlmsearch.models.bundled import EfficientNetLite0, imagenet_tensor, square

    wide = Image.new("RGB", (300, 100), "white")
    wide.paste(Image.new("RGB", (40, 40), "red"), (5, 30))  # at the left end, outside the centre square
    assert square(wide, "crop").getcolors() == [(100 * 100, (255, 255, 255))]
    assert (255, 0, 0) in {colour for _, colour in square(wide, "pad").getcolors()}
    assert square(wide, "pad").size == (300, 300)
    assert tuple(imagenet_tensor([wide], fit="pad").shape) == (1, 3, 224, 224)

    crop, pad = EfficientNetLite0(), EfficientNetLite0(fit="pad")
    assert (crop.name, pad.name) == ("efficientnet-lite0", "efficientnet-lite0-pad")
    images = [wide, skimage_photo("rocket")]
    assert not np.allclose(crop.embed_images(images)[0], pad.embed_images(images)[0], atol=1e-3)
    with pytest.raises(ConfigError, match="unknown fit 'stretch'"):
        EfficientNetLite0(fit="stretch")


def test_image_features_are_normalised_and_meaningful(models):
    cat, coffee = skimage_photo("chelsea"), skimage_photo("coffee")
    vectors = models.image_embedder.embed_images([cat, ImageOps.mirror(cat), coffee])
    assert vectors.shape == (3, 1280)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_ocr_reads_a_sign(models):
    lines = models.ocr.read(text_image("OPEN 9AM"))
    # RapidOCR's recogniser may drop spaces in English (MODELS.md), so compare without them.
    assert "OPEN9AM" in "".join(line.text for line in lines).replace(" ", "").upper()


def test_ocr_finds_nothing_on_a_plain_photo(models):
    assert models.ocr.read(skimage_photo("coffee").crop((0, 0, 80, 80))) == []


def test_text_embedder_ranks_by_meaning(models):
    query, near, far = models.text_embedder.embed_texts(["how long do cats live", "the lifespan of a domestic cat", "espresso is brewed under pressure"])
    assert query @ near > query @ far + 0.2


def test_bundled_chat_answers_from_context(models):
    messages = [
        Message("system", "Answer with one word, using only the context."),
        Message("user", "Context: The capital of Zorbland is Quimby.\nQuestion: What is the capital of Zorbland?"),
    ]
    pieces = list(models.chat.stream(messages, GenerationOptions(max_tokens=16)))
    assert len(pieces) > 1  # streamed piece by piece
    assert "Quimby" in "".join(pieces)
    assert complete(models.chat, messages, GenerationOptions(max_tokens=16)) == "".join(pieces)


def test_text_chat_model_refuses_images(models):
    with pytest.raises(ConfigError, match="reads text only"):
        complete(models.chat, [Message("user", "what is this?", images=(skimage_photo("coffee"),))])


def test_unknown_names_fail_with_the_known_ones(tmp_path):
    with pytest.raises(UnknownModelError, match="known: efficientnet-lite0"):
        build_model("tagger", ModelSpec(backend="bundled", model="resnet-9000"), tmp_path)
    with pytest.raises(ConfigError, match="unknown backend 'tensorflow'.*known: bundled"):
        build_model("chat", ModelSpec(backend="tensorflow", model="x"), tmp_path)
    with pytest.raises(ConfigError, match="has no ocr models"):
        build_model("ocr", ModelSpec(backend="openai", model="gpt"), tmp_path)
    with pytest.raises(ConfigError, match="unknown profile 'gpu-farm'; bundled: hf-cpu, offline"):
        Profile.load("gpu-farm")
    # Our VLM: a shipped adapter by name (the known ones listed), or a checkpoint folder by path.
    with pytest.raises(UnknownModelError, match="known: vlm-clipart-mlp"):
        build_model("vlm", ModelSpec(backend="bundled", model="vlm-huge"), tmp_path)
    with pytest.raises(MissingWeightsError, match="'runs/nowhere' not found; train one"):
        build_model("vlm", ModelSpec(backend="bundled", model="runs/nowhere"), tmp_path)


def test_user_profile_file_with_a_bad_role(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[roles.painter]\nbackend = "bundled"\nmodel = "x"\n')
    with pytest.raises(ConfigError, match="unknown roles \\['painter'\\]"):
        Profile.load(str(path))
