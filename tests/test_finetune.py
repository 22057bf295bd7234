"""The generator's task fine-tune: its training replies, the LoRA loop (a tiny Qwen2 built here), and
the llama.cpp adapter file, checked against peft on the real offline Qwen."""

import json
import re

import numpy as np
import pytest
import tiny_models

from vlmsearch.errors import BadInputError, MissingWeightsError
from vlmsearch.eval.bucket.items import BucketItem
from vlmsearch.finetune.rag_data import ABSTAIN, reply_for
from vlmsearch.vlm.data import Conversation, write_conversations

ITEM = BucketItem(id="t-1", question="What else is this bird called?", reference="It is also called dipper.", source="water-ouzel.md")


def test_the_reply_cites_the_passage_that_holds_the_reference():
    sources = ["docs/wren.md", "docs/water-ouzel.md"]
    shown = ["Wren: a small songbird.", "Water ouzel: a bird. It is also called dipper. It dives."]
    assert reply_for(ITEM, sources, shown) == ("It is also called dipper [2].", "answered")


def test_the_reply_declines_when_no_shown_text_holds_the_answer():
    # The right document, but the focused text the generator sees lacks the reference's words.
    assert reply_for(ITEM, ["water-ouzel.md"], ["Water ouzel: a bird that dives."]) == (ABSTAIN, "missed")
    # The words, but from another document: answering from it would cite the wrong source.
    assert reply_for(ITEM, ["wren.md"], ["The wren is also called dipper."]) == (ABSTAIN, "missed")
    unanswerable = BucketItem(id="t-2", question="How much does this bird weigh?", reference="The documents do not say.")
    assert reply_for(unanswerable, ["water-ouzel.md"], ["Water ouzel: it is also called dipper."]) == (ABSTAIN, "unanswerable")


def test_a_counterfactual_asks_about_the_same_subject_and_states_its_answer_in_the_passage():
    import random

    from vlmsearch.finetune.counterfactual import counterfactual, pointer, with_fact

    assert pointer("What else is this bird called?") == "this bird"
    assert pointer("Name a part of the piece of furniture in this picture.") == "the piece of furniture in this picture"
    assert pointer("What parts does the device named on the sign have?") == "the device named on the sign"
    assert pointer("What is an okapi?") is None and counterfactual("What is an okapi?", "okapi", "animals", random.Random(0)) is None
    for seed in range(20):
        made = counterfactual("What else is this bird called?", "water ouzel", "animals", random.Random(seed))
        assert "this bird" in made.question and made.question != "What else is this bird called?"
        numbers = set(re.findall(r"\d+", made.fact))
        assert numbers and set(re.findall(r"\d+", made.reply)) <= numbers and "[{n}]" in made.reply
        assert made.reply.replace(" [{n}]", "") != made.fact  # answered in other words than the passage's
    assert with_fact("Ouzel: a bird. It dives.", "It weighs 3 kg.", random.Random(0)) in (
        "Ouzel: a bird. It weighs 3 kg. It dives.",
        "Ouzel: a bird. It dives. It weighs 3 kg.",
    )


def _chats(n: int) -> list[Conversation]:
    """Chats in the tiny tokenizer's words: the reply is the colour the question's context names."""
    chats = []
    for i in range(n):
        colour = ("red", "blue")[i % 2]
        chats.append(Conversation(None, (
            {"role": "system", "content": "answer the question"},
            {"role": "user", "content": f"context the {'car' if colour == 'red' else 'sky'} is {colour} question what is this"},
            {"role": "assistant", "content": f"the {colour} car" if colour == "red" else "the blue sky"},
        )))  # fmt: skip
    return chats


def test_lora_training_learns_resumes_and_writes_a_llama_cpp_adapter(tmp_path):
    import gguf

    from vlmsearch.finetune.generator import GeneratorTrainSettings, train_generator

    data = write_conversations(_chats(16), tmp_path / "chats.jsonl")
    base = str(tiny_models.causal_lm(tmp_path / "lm", initializer_range=0.5))
    settings = GeneratorTrainSettings(data=(data,), out=tmp_path / "run", base=base, steps=4, batch_size=4, lr=1e-2, save_every=2, held_out=0.2)
    first = train_generator(settings, tmp_path / "cache")
    resumed = train_generator(settings.model_copy(update={"steps": 30}), tmp_path / "cache")
    assert first.steps == 4 and resumed.steps == 30 and resumed.losses[:4] == first.losses
    assert resumed.held_out_loss_before == first.held_out_loss_before  # the base's loss, not the resumed model's
    assert resumed.held_out_loss < 0.8 * resumed.held_out_loss_before
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()

    reader = gguf.GGUFReader(resumed.gguf)
    fields = {name: field for name, field in reader.fields.items()}
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "qwen2"
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
    # 2 layers x 7 projections x (A, B); GGUF lists dimensions innermost first: A is (in, rank).
    assert len(shapes) == 28
    assert shapes["blk.0.attn_q.weight.lora_a"] == (32, 8) and shapes["blk.1.ffn_down.weight.lora_b"] == (8, 32)


def test_training_refuses_chats_with_images(tmp_path):
    from vlmsearch.finetune.generator import GeneratorTrainSettings, train_generator

    (tmp_path / "a.png").write_bytes(b"")
    line = {"image": "a.png", "messages": [{"role": "user", "content": "what"}, {"role": "assistant", "content": "cat"}]}
    (tmp_path / "chats.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(BadInputError, match="carry no image"):
        train_generator(GeneratorTrainSettings(data=(tmp_path / "chats.jsonl",), out=tmp_path / "run"), tmp_path / "cache")


@pytest.mark.slow  # the real Qwen in fp32 through peft and quantised through llama.cpp; the export itself is checked on a tiny Qwen2 above
def test_the_gguf_adapter_moves_llama_cpp_as_peft_moves_the_real_model(tmp_path):
    """The offline Qwen: logits' change from a LoRA through llama.cpp (quantised base + our adapter
    file) against the same LoRA through peft (the fp32 model it was trained on)."""
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vlmsearch.config import Settings
    from vlmsearch.finetune.generator import TARGETS, base_folder
    from vlmsearch.finetune.gguf_adapter import write_lora_gguf
    from vlmsearch.models.assets import qwen_gguf
    from vlmsearch.vlm.model import BUNDLED_LM

    cache = Settings().cache_dir
    folder = base_folder(BUNDLED_LM, cache)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS))
    torch.manual_seed(0)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(0, 0.02)  # peft starts B at zero: no change to check
    adapter = write_lora_gguf(model, tmp_path / "random.gguf")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Name a red fruit."}], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        tuned = model(input_ids=ids).logits[0, -1].numpy()
        with model.disable_adapter():
            plain = model(input_ids=ids).logits[0, -1].numpy()

    def last_logits(lora):
        llm = Llama(model_path=str(qwen_gguf(cache)), lora_path=lora, n_ctx=256, logits_all=True, verbose=False)
        llm.eval(llm.tokenize(prompt.encode(), special=True))
        return np.array(llm.scores[llm.n_tokens - 1])

    moved = last_logits(str(adapter)) - last_logits(None)
    assert np.abs(tuned - plain).mean() > 0.1  # the LoRA changes the model
    assert np.corrcoef(moved, tuned - plain)[0, 1] > 0.9  # and llama.cpp changes it the same way


def test_a_missing_adapter_fails_clearly(tmp_path):
    from vlmsearch.config import ModelSpec, Settings
    from vlmsearch.models.registry import build_model

    spec = ModelSpec(backend="bundled", model="qwen2.5-coder-0.5b-instruct", options={"lora": str(tmp_path / "x.gguf")})
    with pytest.raises(MissingWeightsError, match="train generator"):
        build_model("generator", spec, Settings().cache_dir)


def test_the_shipped_lora_loads_by_name_and_unknown_names_fail(tmp_path):
    from vlmsearch.config import ModelSpec, Settings
    from vlmsearch.errors import UnknownModelError
    from vlmsearch.models.registry import build_model

    settings = Settings()
    shipped = ModelSpec(backend="bundled", model="qwen2.5-coder-0.5b-instruct", options={"lora": "generator-rag"})
    assert build_model("generator", shipped, settings.cache_dir).name == "qwen2.5-coder-0.5b-instruct + generator-rag"
    spec = ModelSpec(backend="bundled", model="qwen2.5-coder-0.5b-instruct", options={"lora": "generator-nope"})
    with pytest.raises(UnknownModelError, match="generator-rag"):
        build_model("generator", spec, settings.cache_dir)


OKAPI_CHAT = (
    ("system", "Answer the question using only the sources. Cite the source of each fact like [1]."),
    ("user", "Sources:\n[1] (okapi.md) Okapi: a forest animal of central Africa. It is also called forest giraffe.\n"
             "[2] (cat.md) Domestic cats usually live 12 to 18 years.\n\nQuestion: What else is the okapi called?"),
)  # fmt: skip


def _qwen(role: str, **options):
    from vlmsearch.config import ModelSpec, Settings
    from vlmsearch.models.registry import build_model

    return build_model(role, ModelSpec(backend="bundled", model="qwen2.5-coder-0.5b-instruct", options=options), Settings().cache_dir)


def _greedy(chat_model, turns=OKAPI_CHAT) -> str:
    from vlmsearch.models.protocols import GenerationOptions, Message

    return "".join(chat_model.stream([Message(role, text) for role, text in turns], GenerationOptions(max_tokens=24, temperature=0.0)))


def test_an_unmerged_lora_chat_and_the_plain_chat_share_one_model_and_switch_the_adapter_per_turn():
    plain, tuned = _qwen("chat"), _qwen("generator", lora="generator-rag", merge_lora=False)
    assert plain._context is tuned._context  # one copy of the weights and one KV cache

    before = _greedy(plain)
    with_lora = _greedy(tuned)
    after = _greedy(plain)
    assert with_lora != before  # the adapter is on for its own turn
    assert after == before  # and off again, with no keys and values left from the adapter's turn


def test_the_merged_lora_answers_as_the_adapter_does_is_merged_once_and_replaces_older_merges(tmp_path):
    from vlmsearch.models.bundled import shipped_generator_lora
    from vlmsearch.models.gguf_merge import merged_gguf

    merged, unmerged, plain = _qwen("generator", lora="generator-rag"), _qwen("generator", lora="generator-rag", merge_lora=False), _qwen("chat")
    assert merged.name == unmerged.name == "qwen2.5-coder-0.5b-instruct + generator-rag"
    assert merged._adapter is None and merged._context is not plain._context
    animal = (OKAPI_CHAT[0], ("user", "Sources:\n[1] (otter.md) Sea otters eat sea urchins, crabs and clams.\n\nQuestion: What does this animal eat?"))
    for turns in (OKAPI_CHAT, animal):
        assert _greedy(merged, turns) == _greedy(unmerged, turns) != _greedy(plain, turns)

    stamp = merged.path.stat().st_mtime_ns
    earlier = merged.path.with_name(merged.path.name.rsplit("-", 1)[0] + "-000000000000.gguf")  # an older adapter's merge
    earlier.write_bytes(b"stale")
    assert merged_gguf(plain.path, shipped_generator_lora("generator-rag"), merged.path.parent) == merged.path
    assert merged.path.stat().st_mtime_ns == stamp  # kept, not merged again
    assert not earlier.exists()


def test_a_broken_adapter_fails_to_merge_clearly_and_leaves_nothing(tmp_path):
    from vlmsearch.models.gguf_merge import merged_gguf

    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    base = _qwen("chat").path
    with pytest.raises(MissingWeightsError, match="broken.gguf"):
        merged_gguf(base, tmp_path / "broken.gguf", tmp_path / "merged")
    assert not any((tmp_path / "merged").glob("*"))


def test_setup_merges_the_adapters_a_profile_serves_merged_resolved_as_its_roles_resolve_them(tmp_path):
    from vlmsearch.config import ModelSpec, Profile, Settings
    from vlmsearch.models.assets import qwen_gguf
    from vlmsearch.models.bundled import shipped_generator_lora
    from vlmsearch.models.merges import served_merge

    cache = Settings().cache_dir
    base, shipped = qwen_gguf(cache), shipped_generator_lora("generator-rag")
    offline = {served_merge(spec, cache) for spec in Profile.load("offline").roles.values()} - {None}
    assert offline == {(base, shipped)}  # the generator's, and nothing for the plain chat model

    own = tmp_path / "mine.gguf"
    own.write_bytes(shipped.read_bytes())
    assert served_merge(ModelSpec(backend="llamacpp", model=str(base), options={"lora": str(own)}), cache) == (base, own)
    assert served_merge(ModelSpec(backend="bundled", model="qwen2.5-coder-0.5b-instruct", options={"lora": str(own)}), cache) == (base, own)
    per_turn = ModelSpec(backend="bundled", model="qwen2.5-coder-0.5b-instruct", options={"lora": str(own), "merge_lora": False})
    assert served_merge(per_turn, cache) is None
    with pytest.raises(MissingWeightsError, match="gone.gguf"):
        served_merge(ModelSpec(backend="llamacpp", model=str(base), options={"lora": str(tmp_path / "gone.gguf")}), cache)


def test_a_merge_that_cannot_be_written_says_where_and_what_to_do(tmp_path):
    from vlmsearch.models.bundled import shipped_generator_lora
    from vlmsearch.models.gguf_merge import merged_gguf

    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("a file where the cache folder should be")
    with pytest.raises(MissingWeightsError, match=r"could not write the merged model .* merge_lora = false"):
        merged_gguf(_qwen("chat").path, shipped_generator_lora("generator-rag"), not_a_folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
