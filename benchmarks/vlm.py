"""Our VLM's two adapters side by side, the trade-off of seed 001 measured: an MLP projector
(image tokens in the LM's context) against cross-attention (a resampler and gated blocks; no
context). Both are checkpoints of `vlmsearch train vlm` on the same data and steps; this scores
them on held-out captions, with the ImageNet tagger's top class as the untrained baseline.

Caption quality: the share of the reference title's words (3+ letters) that the caption contains
("word hit"), whether it names the drawing's topic folder ("topic hit"), and two standard
metrics against the reference caption, corpus chrF and BLEU (sacrebleu).

`python -m benchmarks.vlm CKPT [CKPT ...] [--test captions-test.jsonl] [--n 60]`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import percentiles_ms, print_table, write_json
from vlmsearch.config import default_cache_dir
from vlmsearch.eval.captions import caption_score
from vlmsearch.images import load_image
from vlmsearch.models.protocols import GenerationOptions, Message, complete
from vlmsearch.vlm.data import load_conversations


def _evaluate(name: str, describe, conversations) -> dict:
    import sacrebleu

    hits, topics, seconds, examples, captions = [], [], [], [], []
    for c in conversations:
        started = time.perf_counter()
        caption = describe(load_image(c.image), c.messages[0]["content"])
        seconds.append(time.perf_counter() - started)
        captions.append(caption)
        score = caption_score(caption, c.messages[-1]["content"])
        hits.append(score.word_hit)
        topics.append(np.nan if score.topic_hit is None else score.topic_hit)
        if len(examples) < 5:
            examples.append({"image": c.image.name, "caption": caption, "reference": c.messages[-1]["content"]})
    references = [[c.messages[-1]["content"] for c in conversations]]
    return {"method": name, "word_hit": float(np.mean(hits)), "topic_hit": float(np.nanmean(topics)),
            "chrF": sacrebleu.corpus_chrf(captions, references).score, "BLEU": sacrebleu.corpus_bleu(captions, references).score,
            **percentiles_ms(seconds), "examples": examples}  # fmt: skip


def _training_facts(checkpoint: Path, model) -> dict:
    """From the run's report; a mid-run snapshot (trainer_state only) gives steps and recent loss."""
    import torch

    facts = {
        "trainable_parameters": sum(v.numel() for v in model.trainable_state().values()),
        "image_context_tokens": model.image_context_tokens,
    }
    report = checkpoint / "training.json"
    if report.is_file():
        trained = json.loads(report.read_text())
        return {**facts, **{k: trained[k] for k in ("steps", "samples_per_second", "last_loss", "held_out_loss")}}
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    return {**facts, "steps": state["step"], "last_loss": float(np.mean(state["losses"][-10:]))}


def _test_loss(chat, conversations, batch_size: int = 4) -> float:
    """Teacher-forced loss on the scored conversations: one yardstick for every checkpoint."""
    import torch

    from vlmsearch.vlm.train import collate

    model = chat._model
    grids = {str(c.image): chat._encoder.feature_maps([load_image(c.image)])[0].numpy() for c in conversations}
    with torch.no_grad():
        losses = [model(*collate(model, conversations[s : s + batch_size], grids, 160)).loss.item()
                  for s in range(0, len(conversations), batch_size)]  # fmt: skip
    return round(float(np.mean(losses)), 4)


def run(checkpoints: list[Path], test: Path, n: int = 60) -> dict:
    from vlmsearch.models.bundled import EfficientNetLite0
    from vlmsearch.vlm.chat import OwnVLMChat

    everything = load_conversations(test)
    conversations = everything[:: max(1, len(everything) // n)][:n]  # spread over the (sorted) file
    tagger = EfficientNetLite0()
    rows = [_evaluate("ImageNet top tag (untrained baseline)", lambda im, _: f"A drawing of {tagger.tag([im], 1)[0][0].label}.", conversations)]
    for checkpoint in checkpoints:
        chat = OwnVLMChat(checkpoint, default_cache_dir())
        options = GenerationOptions(max_tokens=24)
        row = _evaluate(f"{chat.name} ({checkpoint.name})", lambda im, q: complete(chat, [Message("user", q, images=(im,))], options), conversations)
        row.update(_training_facts(checkpoint, chat._model), test_loss=_test_loss(chat, conversations))
        rows.append(row)
        chat = None  # free this LM (2.5 GB) before the next loads
    print_table(f"held-out captions ({len(conversations)} openclipart drawings)",
                [{k: v for k, v in r.items() if k != "examples"} for r in rows])  # fmt: skip
    for r in rows:
        for e in r["examples"][:3]:
            print(f"{r['method']}: {e['image']}: {e['caption']!r}  (reference: {e['reference']})")
    return {"rows": rows, "n": len(conversations)}


if __name__ == "__main__":
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--test", type=Path, default=Path("out/vlm-data/captions-test.jsonl"))
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    print(f"results: {write_json('vlm', run(args.checkpoints, args.test, args.n))}")
