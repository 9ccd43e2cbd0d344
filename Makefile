# One task runner. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared

.PHONY: install demo serve test test-fast lint bench bench-import bench-search quality \
        screenshots clean load

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Load the bundled demo directory and serve it at http://127.0.0.1:8000
demo: install
	$(BIN)/signpost index demo
	$(BIN)/signpost serve --host 127.0.0.1 --port 8000

serve: install
	$(BIN)/signpost serve --host 127.0.0.1 --port 8000

## The whole suite (PostgreSQL too when SIGNPOST_TEST_DATABASE_URL is set)
test: install
	$(BIN)/pytest -q -n auto --dist loadfile

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check service indexer tests bench

## Figures: import rate, search latency and throughput beside the shared baselines
bench: bench-import bench-search

bench-import: install
	$(BIN)/python -m bench.run --shared $(SHARED)

bench-search: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || true
	$(BIN)/python -m bench.search --shared $(SHARED)

## Load: 5,000 requests (search, detail, referral work) at concurrency 32 against the real server
## on 127.0.0.1; throughput, p50/p95/p99, errors, peak memory, then 0 lost referral writes
load: install
	$(BIN)/python -m bench.load

## API fuzzing (schemathesis): every operation, many generated examples; no 500s
fuzz: install
	@rm -f bench-out/fuzz-calls.txt && mkdir -p bench-out
	SIGNPOST_FUZZ_REPORT=bench-out/fuzz-calls.txt \
	  SIGNPOST_FUZZ_EXAMPLES=$${SIGNPOST_FUZZ_EXAMPLES:-50} $(BIN)/pytest -q -n auto tests/test_fuzz.py
	@awk '{n += $$1} END {print "fuzz: " n " generated calls, every one checked against the OpenAPI document"}' bench-out/fuzz-calls.txt

## Search quality on the shared 211 directories: precision@10, recall, colloquial phrasings
quality: install
	$(BIN)/python -m bench.quality --shared $(SHARED)

## PNGs of the search and detail pages at phone (390px) and desktop (1280px) widths
screenshots: install
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium) || true
	$(BIN)/python -m tests.browser.screenshots --out screenshots

clean:
	rm -rf $(VENV) var .pytest_cache
