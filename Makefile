# All set-up lives in scripts/setup.sh; every target below runs it first (a second run takes seconds).
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-slow bench train-joint clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/vlmsearch --store out/demo-store demo --out out/demo

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup  # pytest exits 5 when no test is marked slow: that is not a failure
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

bench: setup
	$(BIN)/python -m benchmarks.run

# Reproduces the joint image-text heads shipped in the package (bit for bit on the same machine).
train-joint: setup
	$(BIN)/vlmsearch train contrastive --data /usr/share/openclipart/png --loss siglip --seed 0 \
		--name joint-openclipart-siglip --out vlmsearch/joint/weights/joint-openclipart-siglip

clean:
	rm -rf out benchmarks/results
