# unimm: two commands do all set-up on a fresh machine with python3: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UNIMM  := $(VENV)/bin/unimm
EXTRAS ?= dev,local,train
WORK   ?= work
DATA   ?= $(WORK)/sample
PIPELINE ?= pipelines/demo.yaml
PYTEST_ARGS ?=

.PHONY: all install demo test test-fast lint fmt bench schemas clean \
        sample ingest merge generate filter shards build verify serve-vllm serve-llamacpp

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
demo: install
	$(UNIMM) build --config $(PIPELINE) --work $(WORK) --out $(WORK)/shards

$(DATA)/.done: | install
	$(UNIMM) sample --out $(DATA)
	touch $@

sample: $(DATA)/.done

$(WORK)/ingest/.done: $(DATA)/.done
	$(UNIMM) ingest --data-root $(DATA) --work $(WORK) --sources coco,vqav2,okvqa,aokvqa,vg
	touch $@

ingest: $(WORK)/ingest/.done

$(WORK)/merged/.done: $(WORK)/ingest/.done
	$(UNIMM) merge --work $(WORK)
	touch $@

merge: $(WORK)/merged/.done

clean:
	rm -rf $(WORK) .pytest_cache .ruff_cache
