# unimm: two commands do all set-up on a fresh machine with python3: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UNIMM  := $(VENV)/bin/unimm
EXTRAS ?= dev,local,train,ray
WORK   ?= work
PIPELINE ?= pipelines/demo.yaml
PYTEST_ARGS ?=

.PHONY: all install demo test test-fast lint fmt bench schemas clean \
        sample ingest merge generate filter shards serve-vllm serve-llamacpp

all: test

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Re-install only when the package metadata changes; torch is pinned through constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/activate
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check unimm tests benchmarks
	$(VENV)/bin/ruff format --check unimm tests benchmarks

fmt: install
	$(VENV)/bin/ruff format unimm tests benchmarks
	$(VENV)/bin/ruff check --fix unimm tests benchmarks

schemas: install
	$(UNIMM) schema export --out schemas

bench: install
	$(PY) benchmarks/run_all.py

# --- the pipeline as file targets ------------------------------------------------------------
# Every target runs `unimm build --until STAGE`: make, `unimm build` and the single-stage commands
# (`unimm filter`, `unimm shards`...) are one runner with one stage cache, so they mix freely; a
# rerun does no work, and a changed pipeline file reruns what it affects.
SAMPLE     := $(WORK)/sample
SAMPLE_DEP ?= $(SAMPLE)/unimm-sample.json
BUILD      := $(UNIMM) build --config $(PIPELINE) --work $(WORK) --out $(WORK)/shards

$(SAMPLE)/unimm-sample.json: | install
	$(UNIMM) sample --out $(SAMPLE)

sample: $(SAMPLE)/unimm-sample.json

$(WORK)/.ingest: $(PIPELINE) $(SAMPLE_DEP) | install
	$(BUILD) --until ingest && touch $@
$(WORK)/.merge: $(WORK)/.ingest
	$(BUILD) --until merge && touch $@
$(WORK)/.generate: $(WORK)/.merge
	$(BUILD) --until generate && touch $@
$(WORK)/.filter: $(WORK)/.generate
	$(BUILD) --until filter && touch $@
$(WORK)/shards/manifest.json: $(WORK)/.filter
	$(BUILD) --until shards
	$(UNIMM) verify $(WORK)/shards

ingest: $(WORK)/.ingest
merge: $(WORK)/.merge
generate: $(WORK)/.generate
filter: $(WORK)/.filter
shards: $(WORK)/shards/manifest.json

# sample data -> full build with the embedded model -> verified shards + report
demo: shards
	$(UNIMM) stats $(WORK)/shards
	$(UNIMM) show $(WORK)/shards -n 2

# production: vLLM on this GPU machine (needs `pip install -e ".[gpu]"`), or llama.cpp's server on CPU
VLLM_MODEL ?= meta-llama/Llama-3.1-8B-Instruct
serve-vllm: install
	$(UNIMM) serve vllm --model $(VLLM_MODEL)
serve-llamacpp: install
	$(UNIMM) serve llamacpp

clean:
	rm -rf $(WORK) .pytest_cache .ruff_cache
