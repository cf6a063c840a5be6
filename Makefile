# The two commands of the course (see README):
#   make lab   set everything up and open the course in JupyterLab
#   make test  set everything up and run every test
# Both create .venv on first use and are quick afterwards (a stamp file records
# that the pinned requirements are installed; it is redone when they change).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.course-installed
# Keep caches and runtime files inside the repository.
CACHE  := $(CURDIR)/.cache
export MPLCONFIGDIR      := $(CACHE)/matplotlib
export IPYTHONDIR        := $(CACHE)/ipython
export JUPYTER_RUNTIME_DIR := $(CACHE)/jupyter-runtime
export PYTHONDONTWRITEBYTECODE := 1
# make test runs with the thread policy a learner gets (course_lib/threads.py, applied by .venv's
# Python at every start): on a machine with 2 CPUs, one torch thread per process, which measured as
# fast alone and far faster beside other work than two (README "Threads"), so the two pytest workers
# do not oversubscribe the cores; the GPT's training loop takes a second thread only while it measures
# the other core free, which beside the other worker is rarely. TEST_THREADS=N forces N threads for one run.
TEST_THREADS ?=
PYTEST_JOBS ?= 2

.PHONY: lab test setup doctor release clean help bench-course

help:
	@echo "make lab   - set up .venv and open the course in JupyterLab"
	@echo "make test  - set up .venv and run every test"

setup: $(STAMP)

# CPU_TORCH=1 (Linux without an NVIDIA GPU): take torch from PyTorch's CPU-only wheel index, about
# 0.2 GB to download instead of about 3 GB with the CUDA libraries (see README "What the installation downloads").
# Off by default. It acts when .venv is created: run `make clean` first to switch an existing one.
CPU_TORCH   ?= 0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN   := $(shell sed -n 's/^torch==//p' requirements.txt)

$(STAMP): requirements.txt pyproject.toml course_lib/threads.py course_lib/teaching/lab_setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
ifeq ($(CPU_TORCH),1)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --index-url $(TORCH_INDEX) "torch==$(TORCH_PIN)"
endif
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# The thread policy, run by every start of .venv's Python (lab, any kernel, tests): see course_lib/threads.py.
	$(BIN)/python course_lib/threads.py install
	@# Learners get RISE's slideshow button, not nbgrader's instructor menus (docs/sessions.md).
	$(BIN)/python -m course_lib.teaching.lab_setup
	@mkdir -p $(CACHE)
	@touch $(STAMP)

# Jupyter refuses to run as root unless told; containers often run as root.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: $(STAMP)
	$(BIN)/python -m course_lib doctor || true
	$(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb

# Notebooks 01 and 02 share trained models through a cache (.cache/models for a learner);
# make test starts from an empty cache of its own, so every run trains them from scratch.
# -rs lists the reason of every skipped test (e.g. the browser test without Chromium).
TEST_MODELS := $(CACHE)/test-models

test: $(STAMP)
	@mkdir -p $(CACHE)
	@rm -rf "$(TEST_MODELS)"
	COURSE_CACHE_DIR="$(TEST_MODELS)" $(if $(TEST_THREADS),OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS)) $(BIN)/python -m pytest -n $(PYTEST_JOBS) --dist loadfile --nbval-lax --nbval-cell-timeout=300 --timeout=900 -rs \
		tests notebooks solutions

doctor: $(STAMP)
	$(BIN)/python -m course_lib doctor

# Every notebook alone and beside one busy process, cold cache (long: two to three times the course's run time).
bench-course: $(STAMP)
	$(BIN)/python -m course_lib bench --course

release: $(STAMP)
	$(BIN)/python -m course_lib release

clean:
	rm -rf $(VENV) $(CACHE)
