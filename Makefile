# All set-up lives in scripts/setup.sh; every target below runs it first (a second run takes seconds).
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-slow bench clean

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

clean:
	rm -rf out benchmarks/results
