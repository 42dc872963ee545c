# signpipe: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= train_config.yml
SOURCES := config models datasets data_preprocessing utils training evaluation tests train.py $(wildcard test.py predict.py export.py demo.py sweep.py benchmarks sweeps serving)
SAMPLE_DATA := data/sample

.DEFAULT_GOAL := help
.PHONY: help venv venv-clean format-check format-apply lint pytest docs docs-serve test test-slow train bench notebook sweep demo

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-landmarks.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt -r requirements-landmarks.txt
	touch $@

venv: $(VENV)/.installed ## create .venv and install the requirements

venv-clean: ## remove .venv
	rm -rf $(VENV)

format-check: $(VENV)/.installed ## check formatting with black
	$(PY) -m black --check $(SOURCES)

format-apply: $(VENV)/.installed ## format the code with black
	$(PY) -m black $(SOURCES)

lint: $(VENV)/.installed ## pylint over every package and script, import-linter over the floors
	$(PY) -m pylint $(SOURCES)
	$(VENV)/bin/lint-imports

# Test workers (pytest-xdist): one per core by default; TEST_WORKERS=0 runs in one
# process. A test file's tests stay together on one worker (its module fixtures).
TEST_WORKERS ?= auto

pytest: $(VENV)/.installed ## run the tests only, on TEST_WORKERS parallel workers (default: one per core)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

docs: $(VENV)/.installed ## build the documentation site into site/ (mkdocs --strict)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed ## serve the documentation on http://127.0.0.1:8000
	$(PY) -m mkdocs serve

test: format-check lint pytest docs ## format-check + lint + tests + docs

test-slow: $(VENV)/.installed ## all tests, with the minutes-long ones (e.g. torch.compile)
	$(PY) -m pytest -m "manual or not manual"

$(SAMPLE_DATA)/test_gloss.txt: | $(VENV)/.installed
	$(PY) -m data_preprocessing.make_sample_dataset $(SAMPLE_DATA)

train: $(VENV)/.installed $(SAMPLE_DATA)/test_gloss.txt ## train with $(CONFIG) (sample data made when missing)
	$(PY) train.py --model_config_path $(CONFIG)

# Where `make demo` and `make notebook` listen: `make demo HOST=0.0.0.0 PORT=8001`.
HOST ?= 127.0.0.1
demo: PORT ?= 8000
notebook: PORT ?= 8888

notebook: $(VENV)/.installed ## open notebooks/walkthrough.ipynb in JupyterLab (HOST=, PORT=: default 127.0.0.1:8888)
	$(PY) -m jupyter lab notebooks/walkthrough.ipynb --ip $(HOST) --port $(PORT)

sweep: $(VENV)/.installed $(SAMPLE_DATA)/test_gloss.txt ## 4-trial grid sweep on the sample data (recipes/sweep_sample.yml); run again to resume
	$(PY) sweep.py recipes/sweep_sample.yml

demo: $(VENV)/.installed ## serve the demo page (HOST=, PORT=: default 127.0.0.1:8000; CHECKPOINT=: default the zoo's WLASL300 model)
	$(PY) demo.py $(CHECKPOINT) --host $(HOST) --port $(PORT)

bench: $(VENV)/.installed ## throughput benchmarks; writes benchmarks/results.json
	$(PY) -m benchmarks.bench
