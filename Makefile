# sofeed: `make run` to mirror Stack Overflow, `make test` for the fast tier, `make check` for everything.
# Every target sets up what it needs first; setup is idempotent and quick once done.

VENV      := .venv
PYTHON    := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
LOCK      := requirements.lock
FERRETDB  := bin/ferretdb
CHROMIUM  := /usr/bin/chromium
WRK       := /usr/bin/wrk
NGINX     := /usr/sbin/nginx
SYSTEMD_ANALYZE := /usr/bin/systemd-analyze
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tiers need, each installed the first time a target asks for it.
APT_INSTALL = $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q

export FERRETDB_TELEMETRY := disable

.PHONY: setup deploy-tools test check lock lint bench bench-quick reliability-report run demo screenshot crawl db db-stop clean

# FerretDB first: a missing or old Go is said before minutes of installing packages.
setup: $(FERRETDB) $(INSTALLED) $(CHROMIUM)

# The whole dependency tree, each package with its hashes, as CI installed it.
$(INSTALLED): $(LOCK)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	touch $@

# requirements.lock from requirements-dev.txt (which includes requirements.txt), after editing either.
# Versions already in the lock are kept when they still fit; delete a line to let it move.
lock: $(INSTALLED)
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
		--output-file $(LOCK) requirements-dev.txt

# FerretDB v1.24.2 (SQLite backend), built from the Go module proxy; see tools/ferretdb/main.go.
$(FERRETDB): tools/ferretdb/main.go tools/ferretdb/go.mod tools/ferretdb/go.sum
	@tools/require_go.sh tools/ferretdb/go.mod
	cd tools/ferretdb && go build -trimpath -buildvcs=false -o $(abspath $(FERRETDB)) .

# Debian's Chromium, for the browser tests.
$(CHROMIUM):
	$(APT_INSTALL) chromium

# Debian's wrk, the HTTP load generator of the fan-out and data-scale benchmarks.
$(WRK):
	$(APT_INSTALL) wrk

# Debian's nginx and systemd-analyze, for the full tier's deployment tests
# (tests/test_nginx.py, tests/test_systemd_units.py); `make check` needs them.
deploy-tools: $(NGINX) $(SYSTEMD_ANALYZE)

$(NGINX):
	$(APT_INSTALL) nginx

$(SYSTEMD_ANALYZE):
	$(APT_INSTALL) systemd

# The fast tier: every test not marked `check` (see pyproject.toml), the browser tests included.
test: setup
	$(PYTHON) -m pytest -m "not check"

# Everything, as CI runs it: lint, the whole suite (tests/reliability/ and its long run
# included; scenario 9 runs wrk), then a smoke run of every benchmark, so that none of them rots.
check: lint deploy-tools $(WRK)
	$(PYTHON) -m pytest
	$(MAKE) --no-print-directory bench-quick

# Every benchmark in bench/ (about 18 minutes here); writes docs/BENCHMARKS.md.
# BENCH_QUICK=1 makes it a smoke run of about a minute and a half, written to var/bench/.
bench: setup $(WRK)
	$(PYTHON) bench/run.py

bench-quick: setup $(WRK)
	BENCH_QUICK=1 $(PYTHON) bench/run.py

# The reliability suite alone (about 10 minutes), then docs/RELIABILITY.md from what it measured.
reliability-report: setup
	$(PYTHON) -m pytest tests/reliability
	$(PYTHON) -m tests.reliability.report

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The local FerretDB on 127.0.0.1:27017, unless MONGO_URI points elsewhere.
db: setup
ifdef MONGO_URI
	@echo "MONGO_URI is set ($(MONGO_URI)): not starting the local FerretDB."
else
	$(PYTHON) tools/localdb.py start
endif

db-stop:
	$(PYTHON) tools/localdb.py stop

# One crawl of the configured feeds (SOFEED_FEED_URLS) into the database.
crawl: db
	$(VENV)/bin/scrapy crawl sofeed

# Everything: the local FerretDB (unless MONGO_URI is set), the scheduler and
# the web app; prints the URL. Ctrl-C stops them all.
run: setup
	$(PYTHON) tools/launch.py

# The same, crawling a simulated feed that publishes a question every few seconds.
demo: setup
	$(PYTHON) tools/launch.py --demo

# Save a screenshot of the live page, from the browser test, for the README.
screenshot: setup
	SOFEED_SCREENSHOT=docs/screenshot.png $(PYTHON) -m pytest -q tests/test_page_in_chromium.py -k screenshot
	SOFEED_SCREENSHOT_DARK=docs/screenshot-dark.png $(PYTHON) -m pytest -q tests/test_page_filters_in_chromium.py -k "colour and dark"

clean:
	-[ -x $(PYTHON) ] && $(PYTHON) tools/localdb.py stop
	rm -rf $(VENV) bin var
