"""Ingest through the real CLI and the Python API: contracts, bad files, idempotency, resume after kill -9."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import lancedb
from conftest import run_cli, skimage_photo, text_image
from PIL import Image


def bad_files(folder):
    folder.mkdir()
    (folder / "notes.jpg").write_text("this is text wearing a .jpg name")
    noise = io.BytesIO()
    Image.effect_noise((300, 300), 50).save(noise, format="PNG")
    (folder / "truncated.png").write_bytes(noise.getvalue()[:3000])
    Image.new("1", (12_000, 12_000)).save(folder / "bomb.png")
    (folder / "empty.txt").write_text("   \n")
    (folder / "empty.md").write_text("")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    shutil.copy(folder / "notes.jpg", os.fsencode(folder) + b"/caf\xe9-latin1.png")  # a name that is not UTF-8
    scan = text_image("Okapis live in the Ituri forest", size=(1400, 300))
    scan.save(folder / "scanned.pdf")  # a page that is only a picture: no text layer
    (folder / "data.xyz").write_text("ignored inside folders")
    skimage_photo("chelsea").save(folder / "good_cat.png")


def test_index_reports_bad_files_and_goes_on(tmp_path):
    bad_files(tmp_path / "mixed")
    (tmp_path / "explicit.xyz").write_text("named on the command line")
    result = run_cli("--store", str(tmp_path / "store"), "index", str(tmp_path / "mixed"),
                     str(tmp_path / "explicit.xyz"), str(tmp_path / "absent"), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["added"] == 2 and summary["unchanged"] == 0 and summary["skipped"] == 1
    assert summary["passages"] == 1  # the scanned page, read by OCR
    reasons = {os.path.basename(f["path"]): f["error"] for f in summary["failed"]}
    assert "not a readable image" in reasons["notes.jpg"]
    assert "broken image data" in reasons["truncated.png"]
    assert "decompression bomb" in reasons["bomb.png"] and "--set ingest.max_image_pixels=144000000" in reasons["bomb.png"]
    assert "no text found (empty or only whitespace)" in reasons["empty.txt"] == reasons["empty.md"]
    assert "not valid UTF-8" in reasons["caf\\xe9-latin1.png"]
    assert "broken PDF" in reasons["broken.pdf"] and "EOF marker" not in result.stderr
    passages = run_cli("--store", str(tmp_path / "store"), "search", "--docs", "okapi forest", "--json")
    assert "ituri" in json.loads(passages.stdout)[0]["text"].lower()
    assert "unsupported file type '.xyz'" in reasons["explicit.xyz"]
    assert "no such file or directory" in reasons["absent"]


def test_second_run_adds_nothing_and_copies_are_unchanged(sample_dir, tmp_path, engine_factory):
    engine = engine_factory(tmp_path / "store")
    first = engine.index([sample_dir])
    assert (first.added, first.unchanged, first.failed) == (5, 0, [])
    shutil.copy(sample_dir / "photos" / "chelsea.png", tmp_path / "same_cat_other_name.png")
    second = engine.index([sample_dir, tmp_path / "same_cat_other_name.png"])
    assert (second.added, second.unchanged) == (0, 6)
    assert engine.store.count() == {"images": 4, "passages": first.passages, "topics": 2}


def test_image_records_carry_tags_ocr_and_cards(indexed_store):
    rows = lancedb.connect(str(indexed_store)).open_table("images").search().limit(10).to_list()
    by_name = {os.path.basename(r["path"]): r for r in rows}
    assert set(by_name) == {"chelsea.png", "coffee.jpg", "rocket.webp", "sign.png"}
    cat = by_name["chelsea.png"]
    assert "cat" in cat["tags"][0]["label"] and json.loads(cat["card"])["gloss"]
    assert "OPEN" in by_name["sign.png"]["ocr_text"].upper()
    assert by_name["coffee.jpg"]["ocr_text"] == ""


def test_killed_ingest_resumes_without_duplicates(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    base = skimage_photo("astronaut")
    for i in range(24):  # distinct content: each rotated and tinted differently
        Image.blend(base.rotate(i * 15), Image.new("RGB", base.size, (i * 10, 0, 255 - i * 10)), 0.3).save(photos / f"p{i:02d}.png")
    store = tmp_path / "store"
    command = [sys.executable, "-m", "vlmsearch.cli", "--store", str(store), "index", str(photos), "--batch-size", "4"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 180
    rows = 0
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (store / "images.lance").exists():
            rows = lancedb.connect(str(store)).open_table("images").count_rows()
            if rows >= 8:
                break
    assert process.poll() is None, "ingest finished before it could be killed; make the test set larger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 8 <= rows < 24

    result = run_cli("--store", str(store), "index", str(photos), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    table = lancedb.connect(str(store)).open_table("images")
    ids = [r["id"] for r in table.search().select(["id"]).limit(100).to_list()]
    assert len(ids) == len(set(ids)) == 24  # every image once: no duplicates, no half batches
    assert summary["added"] + summary["unchanged"] == 24 and summary["unchanged"] >= 8


def test_reindexing_adds_joint_vectors_without_redoing_the_rest(sample_dir, tmp_path, engine_factory):
    """A store built before the joint model (a profile without image_text) gains it on re-index."""
    from importlib import resources

    offline = (resources.files("vlmsearch.profiles") / "offline.toml").read_text()
    without_joint = tmp_path / "no-joint.toml"
    without_joint.write_text("\n".join(line for line in offline.split("\n\n") if "roles.image_text" not in line))
    store = tmp_path / "store"
    first = engine_factory(store, str(without_joint)).index([sample_dir / "photos"])
    assert first.added == 4 and "joint_embedder" not in first.stage_seconds
    hinted = run_cli("--store", str(store), "search", "a cat", "--json")  # the offline profile, with its joint model
    assert hinted.returncode == 0 and "4 images were indexed before the joint image-text model" in hinted.stderr

    engine = engine_factory(store)
    second = engine.index([sample_dir / "photos"])
    assert (second.added, second.updated, second.unchanged) == (0, 4, 0)
    assert "ocr" not in second.stage_seconds and "tagger" not in second.stage_seconds  # only the new vector
    rows = lancedb.connect(str(store)).open_table("images").to_arrow().to_pylist()
    assert all(r["joint"] is not None for r in rows) and any("OPEN" in (r["ocr_text"] or "") for r in rows)
    third = engine.index([sample_dir / "photos"])
    assert (third.added, third.updated, third.unchanged) == (0, 0, 4)
    hits = engine.search_images("a cat", k=2)
    assert hits[0].path.endswith("chelsea.png")
    assert "indexed before the joint" not in run_cli("--store", str(store), "search", "a cat").stderr


def test_the_pixel_limit_is_a_real_setting(tmp_path):
    Image.new("1", (10_000, 8_000), 1).save(tmp_path / "poster.png")  # 80 Mpixels: over the default 64
    store = str(tmp_path / "store")
    refused = json.loads(run_cli("--store", store, "index", str(tmp_path / "poster.png"), "--json").stdout)
    assert "--set ingest.max_image_pixels=80000000" in refused["failed"][0]["error"]
    allowed = run_cli("--store", store, "--set", "ingest.max_image_pixels=80000000", "index", str(tmp_path / "poster.png"), "--json")
    assert json.loads(allowed.stdout)["added"] == 1, allowed.stderr
    row = lancedb.connect(store).open_table("images").search().select(["width", "height"]).limit(1).to_list()[0]
    assert (row["width"], row["height"]) == (10_000, 8_000)  # the file's size, though the models saw less
    wrong = run_cli("--store", store, "--set", "ingest.max_pixels=1", "status")
    assert wrong.returncode == 1 and "unknown setting 'ingest.max_pixels'" in wrong.stderr
