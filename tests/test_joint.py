"""The joint image-text model: pair data, losses, training on real towers, the shipped checkpoint."""

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, skimage_photo
from PIL import Image

from vlmsearch.config import Settings
from vlmsearch.errors import BadInputError
from vlmsearch.images import load_image
from vlmsearch.joint.losses import clip_loss, siglip_loss
from vlmsearch.joint.pairs import clean_titles, load_pairs, split_pairs

OPENCLIPART = Path("/usr/share/openclipart/png")


def test_titles_lose_authors_numbers_and_codes():
    stems = [
        "saturn_dan_gerhards_01", "venus_dan_gerhards_01", "comet_dan_gerhards_02",  # a full author, 3 titles
        "hide_girl_sergio_luiz_ar_02", "cat_sergio_luiz_araujo_01", "dog_sergio_luiz_araujo_01",
        "lamp_sergio_luiz_araujo_01",  # truncated to 24 characters: a prefix of a known author
        "xmas_tree_01", "palm_tree_01", "oak_tree_02", "tree_house_01",  # 'tree' starts a name: a word, kept
        "star_95pt06step", "baloon2_01",
    ]  # fmt: skip
    titles = clean_titles(stems)
    assert titles["saturn_dan_gerhards_01"] == "saturn"
    assert titles["hide_girl_sergio_luiz_ar_02"] == "hide girl"
    assert titles["palm_tree_01"] == "palm tree"
    assert titles["star_95pt06step"] == "star"
    assert titles["baloon2_01"] == "baloon"


def _picture(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)


def test_folder_pairs_use_captions_topics_and_merge_identical_files(tmp_path):
    _picture(tmp_path / "science" / "astronomy" / "full_moon_01.png", "white")
    _picture(tmp_path / "science" / "astronomy" / "moon_copy.png", "white")  # the same bytes
    _picture(tmp_path / "animals" / "IMG_0001.png", "brown")
    (tmp_path / "animals" / "IMG_0001.txt").write_text("a brown  horse\nin a field")
    pairs = {p.image.name: p for p in load_pairs(tmp_path)}
    moon = pairs["full_moon_01.png"]
    assert moon.texts == ("full moon", "full moon, astronomy, science") and moon.topic == "astronomy, science"
    assert pairs["IMG_0001.png"].texts == ("a brown horse in a field",)  # the sidecar caption wins
    assert pairs["moon_copy.png"].group == moon.group  # identical files never land in two splits


def test_jsonl_pairs_and_their_errors(tmp_path):
    _picture(tmp_path / "a.png", "red")
    good = tmp_path / "pairs.jsonl"
    good.write_text('{"image": "a.png", "text": "a red square"}\n\n')
    assert [p.text for p in load_pairs(good)] == ["a red square"]
    for line, message in [
        ('{"image": "a.png"}', "pairs.jsonl:1: expected"),
        ('{"image": "gone.png", "text": "x"}', "image not found"),
        ('{"image": "a.png", "text": "  "}', "empty text"),
    ]:
        bad = tmp_path / "pairs.jsonl"
        bad.write_text(line + "\n")
        with pytest.raises(BadInputError, match=message):
            load_pairs(bad)
    with pytest.raises(BadInputError, match="expected a folder of images or a .jsonl"):
        load_pairs(tmp_path / "a.png")


def test_split_is_stable_and_never_cuts_a_group():
    pairs = load_pairs(OPENCLIPART / "animals")
    first, again = split_pairs(pairs), split_pairs(list(reversed(pairs)))
    assert {k: sorted(p.image for p in v) for k, v in first.items()} == {k: sorted(p.image for p in v) for k, v in again.items()}
    groups = {name: {p.group for p in split} for name, split in first.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert all(first.values())


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_losses_prefer_matching_pairs(loss):
    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    texts_matching = torch.nn.functional.normalize(images + 0.1 * torch.randn(16, 8), dim=1)
    texts_shuffled = texts_matching[torch.randperm(16)]
    positives = torch.eye(16, dtype=torch.bool)
    scale, bias = torch.tensor(np.log(10.0)), torch.tensor(-5.0)

    def value(texts, positives=positives):
        if loss == "clip":
            return clip_loss(images, texts, scale, positives)
        return siglip_loss(images, texts, scale, bias, positives)

    assert value(texts_matching) < value(texts_shuffled)
    # Two texts of one group are not negatives of each other: marking them positive lowers the loss.
    duplicate = texts_matching.clone()
    duplicate[1] = duplicate[0]
    grouped = positives.clone()
    grouped[0, 1] = grouped[1, 0] = True
    assert value(duplicate, grouped) < value(duplicate)


@pytest.fixture(scope="module")
def small_clipart(tmp_path_factory) -> Path:
    """About 120 real openclipart drawings of a few kinds."""
    root = tmp_path_factory.mktemp("clipart")
    for folder in ("animals/birds", "animals/bugs", "food/fruit", "signs_and_symbols/weather", "recreation/sports"):
        for path in sorted((OPENCLIPART / folder).glob("*.png"))[:28]:
            if path.stat().st_size < 400_000:  # keep the test light: no poster-sized renders
                target = root / folder / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
    return root


def test_training_learns_saves_and_reproduces(small_clipart, tmp_path):
    from vlmsearch.joint.embedder import JointEmbedder
    from vlmsearch.joint.train import ContrastiveSettings, train

    cache = tmp_path / "cache"
    settings = ContrastiveSettings(data=small_clipart, out=tmp_path / "a", max_epochs=12, patience=12, held_out=0.15)
    report = train(settings, cache)
    assert report.history[-1]["loss"] < 0.7 * report.history[0]["loss"]
    assert set(report.val) == {"text_to_image", "image_to_text"} and 1 <= report.best_epoch <= 12
    assert report.correction_scale in (0.25, 0.5, 0.75, 1.0)  # chosen on val, saved with the heads
    assert json.loads((settings.out / "config.json").read_text())["correction_scale"] == report.correction_scale
    assert json.loads((settings.out / "training.json").read_text())["best_epoch"] == report.best_epoch
    cached = np.load(cache / "features" / "efficientnet-lite0+classes.images.npz")
    distinct = {hashlib.sha256(p.read_bytes()).hexdigest() for p in small_clipart.rglob("*.png")}
    assert set(cached["keys"].tolist()) == distinct  # each distinct image's tower features, computed once

    # The same seed and data give the same heads (features now come from the cache).
    again = train(settings.model_copy(update={"out": tmp_path / "b"}), cache)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert again.val == report.val

    # The checkpoint loads as an image_text model: unit vectors, same space for images and texts.
    model = JointEmbedder(settings.out, cache)
    images = model.embed_images([load_image(next(small_clipart.rglob("*.png")))])
    texts = model.embed_texts(["a bird", "an apple"])
    assert images.shape == (1, model.dim) and texts.shape == (2, model.dim)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("classes", [0, 5])
def test_merged_heads_are_exactly_the_members_average(classes):
    from vlmsearch.joint.model import JointConfig, JointHeads, merge_heads

    config = JointConfig(name="t", image_features=12, text_features=8, dim=8, hidden=16, classes=classes, correction_scale=0.5)
    torch.manual_seed(0)
    members = [JointHeads(config).eval() for _ in range(3)]
    for heads in members:  # trained-looking: nothing at its initial value
        for p in heads.parameters():
            p.data.add_(0.3 * torch.randn_like(p))
        if classes:
            heads.class_text.copy_(members[0].class_text if heads is not members[0] else torch.randn(classes, 8))
    merged = merge_heads(members).eval()
    assert merged.config.hidden == 48
    images, texts = torch.rand(4, 12 + classes), torch.randn(4, 8)

    def raw(heads, x):  # the image embedding before normalising
        if not classes:
            return heads.image(x)
        prior = torch.nn.functional.normalize(x[:, 12:] @ heads.class_text, dim=-1)
        return 0.5 * heads.image(x[:, :12]) + heads.text(prior)

    with torch.no_grad():
        expected = torch.nn.functional.normalize(torch.stack([raw(m, images) for m in members]).mean(0), dim=-1)
        assert torch.allclose(merged.embed_images(images), expected, atol=1e-5)
        text = torch.nn.functional.normalize(torch.stack([m.text(texts) for m in members]).mean(0), dim=-1)
        assert torch.allclose(merged.embed_texts(texts), text, atol=1e-5)
        assert torch.isclose(merged.logit_scale, torch.stack([m.logit_scale for m in members]).mean())


def test_views_and_members_train_one_padded_checkpoint(small_clipart, tmp_path):
    """The shipped recipe, small: augmented views cached beside the originals, two members merged."""
    from vlmsearch.config import ModelSpec
    from vlmsearch.joint.augment import augmented
    from vlmsearch.joint.embedder import JointEmbedder
    from vlmsearch.joint.train import ContrastiveSettings, train

    image = load_image(next(small_clipart.rglob("*.png")))
    assert augmented(image, 0, "pad").tobytes() == augmented(image, 0, "pad").tobytes()  # a view is the same every run
    assert augmented(image, 0, "pad").tobytes() != augmented(image, 1, "pad").tobytes()

    cache = tmp_path / "cache"
    padded = ModelSpec(backend="bundled", model="efficientnet-lite0", options={"fit": "pad"})
    settings = ContrastiveSettings(data=small_clipart, out=tmp_path / "heads", max_epochs=6, patience=6, held_out=0.15,
                                   views=2, members=2, image_tower=padded)  # fmt: skip
    report = train(settings, cache)
    assert len(report.member_best_epochs) == 2 and {h["member"] for h in report.history} == {0, 1}
    config = json.loads((settings.out / "config.json").read_text())
    assert config["hidden"] == 2 * settings.hidden and config["image_tower"]["options"] == {"fit": "pad"}
    training = split_pairs(load_pairs(small_clipart), 0.15)["train"]
    for view in (0, 1):  # views of the training images only, each computed once
        cached = np.load(cache / "features" / f"efficientnet-lite0-pad-aug{view}+classes.images.npz")
        assert set(cached["keys"].tolist()) == {hashlib.sha256(p.image.read_bytes()).hexdigest() for p in training}
    assert not list(settings.out.glob("trainer_state*"))
    model = JointEmbedder(settings.out, cache)
    assert model.image_tower.name == "efficientnet-lite0-pad" and model.embed_images([image]).shape == (1, model.dim)


def _train_and_die(settings, cache, saves: int) -> None:
    """In a child process: train, and SIGKILL ourselves right after the `saves`-th epoch is saved."""
    import vlmsearch.joint.train as joint_train

    save, done = joint_train.save_atomically, []

    def save_then_die(state, path):
        save(state, path)
        done.append(path)
        if len(done) == saves:
            os.kill(os.getpid(), signal.SIGKILL)

    joint_train.save_atomically = save_then_die
    joint_train.train(settings, cache)


@pytest.mark.slow  # ~32 s: a real kill and resume of `train contrastive`; the VLM's kill-and-resume test stays in the default tier
def test_a_killed_run_resumes_to_the_same_heads(small_clipart, tmp_path):
    from vlmsearch.joint.train import STATE_FILE, ContrastiveSettings, train

    cache = tmp_path / "cache"
    settings = ContrastiveSettings(data=small_clipart, out=tmp_path / "straight", max_epochs=10, patience=10, held_out=0.15)
    straight = train(settings, cache)
    killed = settings.model_copy(update={"out": tmp_path / "killed"})
    for saves in (3, 2):  # killed after epoch 3, then again two epochs later
        child = multiprocessing.get_context("spawn").Process(target=_train_and_die, args=(killed, cache, saves))
        child.start()
        child.join(300)
        assert child.exitcode == -signal.SIGKILL and (killed.out / STATE_FILE).is_file()
    resumed = train(killed, cache)
    assert (settings.out / "model.safetensors").read_bytes() == (killed.out / "model.safetensors").read_bytes()
    assert resumed.history == straight.history and not (killed.out / STATE_FILE).exists()


def test_shipped_model_finds_held_out_clipart_by_words():
    """Drawings whose groups the shipped heads never saw (the test split), searched by their titles."""
    from vlmsearch.config import Profile
    from vlmsearch.joint.evaluate import gallery, queries, retrieval_metrics
    from vlmsearch.models import Models

    test = split_pairs(load_pairs(OPENCLIPART / "animals"))["test"] + split_pairs(load_pairs(OPENCLIPART / "food"))["test"]
    shown, asked = gallery(test), queries(test)
    model = Models(Profile.load("offline"), Settings().cache_dir).image_text
    images = model.embed_images([load_image(p.image) for p in shown])
    metrics = retrieval_metrics(images, shown, model.embed_texts([p.text for p in asked]), asked)
    chance = 10 / len(shown)
    assert len(asked) >= 10 and metrics["text_to_image"]["recall@10"] > 3 * chance, metrics


def test_tag_cli_zero_shot_and_default_tags(tmp_path):
    image = tmp_path / "coffee.png"
    skimage_photo("coffee").save(image)
    result = run_cli("tag", str(image), "--labels", "coffee, car, tree", "--json")
    assert result.returncode == 0, result.stderr
    tags = json.loads(result.stdout)
    assert [t["label"] for t in tags][0] == "coffee" and len(tags) == 3
    assert tags == sorted(tags, key=lambda t: -t["score"])
    result = run_cli("tag", str(image), "-k", "2", "--json")  # no labels: the tagger's own classes
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 2
    result = run_cli("tag", str(image), "--labels", " , ")
    assert result.returncode == 1 and "no labels given" in result.stderr


def test_train_cli_reports_and_refuses_bad_input(small_clipart, tmp_path):
    result = run_cli("train", "contrastive", "--data", str(small_clipart), "--out", str(tmp_path / "ck"), "--max-epochs", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["epochs"] == 3 and (tmp_path / "ck" / "model.safetensors").is_file()
    result = run_cli("train", "contrastive", "--data", str(small_clipart), "--out", str(tmp_path / "x"), "--loss", "triplet")
    assert result.returncode == 1 and "loss" in result.stderr
    result = run_cli("train", "contrastive", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "expected a folder of images" in result.stderr
