# All set-up lives in scripts/setup.sh; every target below runs it first (a second run takes seconds).
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test lint docs docs-build test-slow bench reliability eval eval-extract train-joint train-vlm train-generator clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/vlmsearch --store out/demo-store demo --out out/demo

test: setup lint
	$(BIN)/python -m pytest -q

lint: setup  # seconds: the lint rules and the one format that pyproject.toml sets
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site (docs/, mkdocs.yml): `docs` serves it with live reload, `docs-build` builds it strictly
# (a broken link, a missing page or a reference page that no longer generates fails), as CI does.
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true
docs: setup
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001
docs-build: setup
	$(BIN)/mkdocs build --strict --site-dir out/site

test-slow: setup  # pytest exits 5 when no test is marked slow: that is not a failure
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

bench: setup
	$(BIN)/python -m benchmarks.run

# The reliability harnesses in full (~45 min on 2 cores; short versions run in `make test`):
# ingest killed 20 times, 1,000 hostile files, 58 prompt injections through both pipelines, 50 clients
# for 60 s under attack. Tables printed, JSON in benchmarks/results/.
reliability: setup
	$(BIN)/python -m benchmarks.crash
	$(BIN)/python -m benchmarks.fuzz
	$(BIN)/python -m benchmarks.injection
	$(BIN)/python -m benchmarks.siege

# The held-out evaluation on two distributions: the template bucket (built from WordNet) and the hand-written set
# (eval/natural: natural questions over prose documents). Answers each test split with both pipelines and with the plain
# Qwen as generator (llm-plain), the template bucket's conversations too, and judges vlm against llm and the default
# generator against the plain one side by side (reference judge; the offline chat model on the template bucket).
# EVAL_LIMIT=N answers only the first N items, for a quick look.
EVAL_LIMIT := 0
EVAL_BUCKET := out/bucket/test/bucket.jsonl
EVAL_WRITTEN := out/written/test/bucket.jsonl
eval: setup
	$(BIN)/vlmsearch eval make-bucket --out out/bucket
	$(BIN)/vlmsearch eval answers --bucket $(EVAL_BUCKET) --pipeline llm --pipeline llm-plain --pipeline vlm --limit $(EVAL_LIMIT) --out out/eval
	$(BIN)/vlmsearch eval answers --bucket out/bucket/test/conversations.jsonl --pipeline llm --pipeline vlm --limit $(EVAL_LIMIT) --out out/eval-conversations
	$(BIN)/vlmsearch eval sbs --bucket $(EVAL_BUCKET) --a vlm --b llm --judge reference --limit $(EVAL_LIMIT) --out out/eval
	$(BIN)/vlmsearch eval sbs --bucket $(EVAL_BUCKET) --a vlm --b llm --judge offline --limit $(EVAL_LIMIT) --out out/eval
	$(BIN)/vlmsearch eval sbs --bucket $(EVAL_BUCKET) --a llm --b llm-plain --judge reference --limit $(EVAL_LIMIT) --out out/eval
	$(BIN)/vlmsearch eval make-written --out out/written
	$(BIN)/vlmsearch eval answers --bucket $(EVAL_WRITTEN) --pipeline llm --pipeline llm-plain --pipeline vlm --limit $(EVAL_LIMIT) --out out/eval-written
	$(BIN)/vlmsearch eval sbs --bucket $(EVAL_WRITTEN) --a llm --b llm-plain --judge reference --limit $(EVAL_LIMIT) --out out/eval-written
	$(BIN)/vlmsearch eval sbs --bucket $(EVAL_WRITTEN) --a vlm --b llm --judge reference --limit $(EVAL_LIMIT) --out out/eval-written

# Structured extraction and located objects on the rendered extraction set (~12 min on 2 cores): field exact match,
# valid outputs and invented values per pipeline, detection recall against one whole-image box (out/eval-extract/detect.png).
EXTRACT_SPLIT := test
eval-extract: setup
	$(BIN)/vlmsearch eval make-extract --out out/located
	$(BIN)/vlmsearch eval extract --bucket out/located/$(EXTRACT_SPLIT)/extract.jsonl --pipeline llm --out out/eval-extract
	$(BIN)/vlmsearch eval extract --bucket out/located/$(EXTRACT_SPLIT)/extract.jsonl --pipeline vlm --out out/eval-extract
	$(BIN)/vlmsearch eval detect --bucket out/located/$(EXTRACT_SPLIT)/detect.jsonl --out out/eval-extract

# Reproduces the joint image-text heads shipped in the package (bit for bit on the same machine;
# ~17 min cold on 2 cores, most of it the tower features of 4 augmented views, then cached).
train-joint: setup
	$(BIN)/vlmsearch train contrastive --data /usr/share/openclipart/png --loss siglip --seed 0 \
		--image-fit pad --views 4 --members 3 \
		--name joint-openclipart-siglip-ens --out vlmsearch/joint/weights/joint-openclipart-siglip-ens

# Reproduces the recipe of the VLM adapter shipped in the package (~1.5 h on 2 cores with bf16; not
# bit for bit: bf16 matmuls): datasets, captioning pretrain, then the task stage on the pipeline's
# own captioner and rephraser prompts plus SFT instructs.
VLM_DATA := out/vlm-data
VLM_TASK_STEPS := 1200
train-vlm: setup
	$(BIN)/vlmsearch train vlm-data --out $(VLM_DATA)
	$(BIN)/vlmsearch train vlm --data $(VLM_DATA)/captions-train.jsonl --out out/vlm-pretrain \
		--name vlm-clipart-mlp --steps 1000 --lr 1e-3
	$(BIN)/vlmsearch train vlm --stage task --init out/vlm-pretrain --out out/vlm-task --steps $(VLM_TASK_STEPS) --lr 5e-4 \
		--data $(VLM_DATA)/captioner-train.jsonl --data $(VLM_DATA)/rephraser-train.jsonl --data $(VLM_DATA)/sft-train.jsonl
	$(BIN)/vlmsearch eval make-bucket --out out/bucket --split train --max-items 400
	$(BIN)/vlmsearch train vlm-prefs --bucket out/bucket/train/bucket.jsonl --vlm out/vlm-task --out out/vlm-prefs.jsonl
	$(BIN)/vlmsearch train vlm --stage dpo --init out/vlm-task --data out/vlm-prefs.jsonl --keep $(VLM_DATA)/captioner-train.jsonl \
		--out out/vlm-dpo --steps 100 --lr 1e-4 --beta 0.1
	mkdir -p vlmsearch/vlm/weights/vlm-clipart-mlp
	cp out/vlm-dpo/config.json out/vlm-dpo/adapter.safetensors out/vlm-dpo/training.json vlmsearch/vlm/weights/vlm-clipart-mlp/
	cp out/vlm-task/training.json vlmsearch/vlm/weights/vlm-clipart-mlp/task.json
	cp out/vlm-pretrain/training.json vlmsearch/vlm/weights/vlm-clipart-mlp/pretrain.json

# The generator's LoRA shipped in the package and used by the offline profile (~55 min on 2 cores: 8 for
# the data, 45 for 80 steps): its own prompts on 400 train-split items, answered from the passage that
# holds the reference, plus counterfactual pairs (README: The generator's fine-tune); a llama.cpp
# adapter over the offline GGUF.
train-generator: setup  # 80 steps on the bucket's chats, then 30 more with the sign-reading chats mixed in (resumed)
	$(BIN)/vlmsearch eval make-bucket --out out/bucket --split train --max-items 400
	$(BIN)/vlmsearch train generator-data --bucket out/bucket/train/bucket.jsonl --out out/generator-rag.jsonl
	$(BIN)/vlmsearch train sign-data --bucket out/bucket/train/bucket.jsonl --out out/generator-signs.jsonl --count 150 --other-share 0.1
	$(BIN)/vlmsearch train generator --data out/generator-rag.jsonl --out out/generator-rag --name generator-rag --steps 80 --lr 3e-4
	$(BIN)/vlmsearch train generator --data out/generator-rag.jsonl --data out/generator-signs.jsonl --data out/generator-signs.jsonl \
		--out out/generator-rag --name generator-rag --steps 110 --lr 3e-4
	mkdir -p vlmsearch/finetune/weights/generator-rag
	cp out/generator-rag/generator-rag.gguf out/generator-rag/training.json vlmsearch/finetune/weights/generator-rag/

clean:
	rm -rf out benchmarks/results
