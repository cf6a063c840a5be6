"""The course as learners see it: JupyterLab in a real (headless) Chromium.

nbval runs the notebooks' code, but not what a learner looks at: the widget
front end, the rendered check reports, the browser console. This test starts
JupyterLab from the course's venv, opens each notebook of ``PAGES`` in
Chromium (driven by the ``playwright`` package, using the system's Chromium:
never ``playwright install``, which downloads browsers), runs every cell from
the Run menu as a learner would, and asserts that

- every code cell ran, with no traceback, no "Error displaying widget" or
  "model not found" and no error in the browser console;
- moving the first control of each explorer redraws its figure;
- an exercise notebook shows red check reports saying "not implemented yet"
  with a hint.

JupyterLab's settings, workspaces, runtime files and checkpoints live in a
temporary folder, autosave is off, and the test asserts that the notebook
files are unchanged afterwards. Without Chromium (Debian: ``apt-get install
chromium``) or playwright the test skips and says why; with
``COURSE_BROWSER_TEST=required`` (set by ``.ci/run``) it fails instead.

A new notebook with an explorer is one more line in ``PAGES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Page:
    path: str  # relative to the repository root
    explorers: int = 0  # explorers the notebook shows; the first control of each is moved
    exercise: bool = False  # unsolved exercises: expect red "not implemented yet" reports with hints


PAGES = [
    Page("notebooks/03_self_attention.ipynb", explorers=1),
    Page("exercises/03_self_attention.ipynb", exercise=True),
    # 06-10 train models: their kernels share make test's model cache (COURSE_CACHE_DIR), so what
    # nbval or an earlier page trained is loaded, not trained again (10 reuses 07's GPT and 08's ViT).
    Page("notebooks/06_transformer.ipynb", explorers=1),         # source dropdown
    Page("notebooks/07_gpt.ipynb", explorers=1),                 # sampler: temperature slider
    Page("notebooks/08_vision_transformer.ipynb", explorers=1),  # test digit slider
    Page("notebooks/09_efficient_attention.ipynb", explorers=1), # online softmax: block slider
    Page("notebooks/10_interpretability.ipynb", explorers=1),    # attributions: example slider
]

#: How long a notebook may take to run in the browser (the nbval budget is 300 s a cell).
RUN_TIMEOUT_S = 600
REQUIRED = os.environ.get("COURSE_BROWSER_TEST", "").lower() == "required"
CHROMIUM = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: Without the background-networking flags Chromium tries to reach Google's servers, which a closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Texts that must never appear in a notebook a learner has just run.
FORBIDDEN = ["Error displaying widget", "model not found", "Traceback"]


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
        return "no Chromium found (Debian/Ubuntu: apt-get install -y chromium; or set COURSE_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port, everything it writes in a temporary folder -> (url, token)."""
    reason = _unavailable()
    if reason:
        if REQUIRED:
            pytest.fail(f"browser test required (COURSE_BROWSER_TEST=required) but {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    tmp = tmp_path_factory.mktemp("lab")
    settings = tmp / "settings"
    # autosave off: the run must not write outputs into the repository's notebooks;
    # no windowing: every cell is in the page, so every prompt and output can be read.
    for plugin, values in {"docmanager-extension/plugin": {"autosave": False},
                           "notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}
                           }.items():
        file = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(values))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
               MPLCONFIGDIR=str(tmp / "matplotlib"), HOME=str(tmp / "home"))
    env.setdefault("COURSE_CACHE_DIR", str(tmp / "models"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           f"--FileCheckpoints.root_dir={tmp / 'checkpoints'}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(tmp / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, token, tmp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    _, _, tmp = lab
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000}, env={**os.environ, "HOME": str(tmp / "home")})
        try:
            yield context
        finally:
            context.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_all(page) -> None:
    """Run every cell from the Run menu, as a learner does, and wait until the kernel is idle again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    # a long notebook still rendering shows a spinner over the cells, which swallows clicks
    page.locator(".jp-NotebookPanel .jp-Spinner").wait_for(state="hidden", timeout=180_000)
    for attempt in range(2):  # a click lost on a busy machine is repeated once, as a learner would
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        # started: a prompt shows [*] or a number (else waiting for "idle" would succeed at once)
        try:
            page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""", timeout=60_000)
            break
        except PlaywrightTimeout:
            if attempt:  # no prompt is [*] after two clicks: nothing was queued, so a third would not help
                raise
    page.wait_for_function("""() => {
        const busy = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .some(p => p.textContent.includes('[*]'));
        const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
        return !busy && idle !== null;
    }""", timeout=RUN_TIMEOUT_S * 1000, polling=500)


def _explorers(page):
    """Each explorer's widget box: a VBox holding a row of controls and an Output showing a PNG."""
    return page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator(".widget-output img")).filter(has=page.locator(".widget-hbox"))


def _move_first_control(explorer) -> str:
    """Change the first control of an explorer that can change, as a learner would -> what was done (for messages).

    A slider moves one step right, or left when it is at its maximum; a slider whose range is a single value
    (a notebook may have driven the explorer there from code) is passed over for the next control."""
    skipped = []
    for control in explorer.locator(".widget-hbox").first.locator(
            ".widget-inline-hbox, .widget-select-multiple").all():
        select = control.locator("select")
        if select.count():
            options = select.locator("option").all_inner_texts()
            if len(options) < 2:
                skipped.append(f"dropdown with one option {options}")
                continue
            current = select.evaluate("s => s.selectedIndex")
            target = (current + 1) % len(options)
            select.select_option(index=target)
            return f"dropdown {options[current]!r} -> {options[target]!r}"
        handle = control.locator(".noUi-handle")
        if handle.count():
            readout = control.locator(".widget-readout")
            before = readout.inner_text()
            low, high = handle.get_attribute("aria-valuemin"), handle.get_attribute("aria-valuemax")
            if low is not None and low == high:
                skipped.append(f"slider fixed at {before}")
                continue
            handle.focus()
            at_max = high is not None and handle.get_attribute("aria-valuenow") == high
            handle.press("ArrowLeft" if at_max else "ArrowRight")
            return f"slider {before} -> {readout.inner_text()}"
        skipped.append(control.evaluate("e => e.className"))
    raise AssertionError(f"the explorer has no control this test can move (passed over: {skipped})")


@pytest.mark.parametrize("spec", PAGES, ids=[Path(p.path).parent.name + "/" + Path(p.path).stem[:2] for p in PAGES])
def test_a_learner_runs_the_notebook_in_jupyterlab(lab, browser, spec):
    url, token, tmp = lab
    notebook = REPO / spec.path
    digest = _digest(notebook)
    checkpoints_before = set(REPO.rglob(".ipynb_checkpoints"))
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    started = time.monotonic()
    try:
        page.goto(f"{url}/lab/tree/{spec.path}?reset&token={token}")
        _run_all(page)
        ran = time.monotonic() - started
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        unrun = [i for i, p in enumerate(prompts) if not re.search(r"\[\d+\]", p)]
        text = page.locator(".jp-Notebook").inner_text()
        if unrun:  # say why Run All stopped: the error the notebook shows, else the last cell that ran
            shown = next((w for w in ("Traceback", "Error") if w in text), None)
            why = _around(text, shown, 1200) if shown else text[-1500:]
            raise AssertionError(f"code cells {unrun} of {len(prompts)} did not run after {ran:.0f} s "
                                 f"(prompts: {prompts}); the notebook shows:\n{why}")
        for word in FORBIDDEN:
            assert word not in text, f"{spec.path} shows {word!r}:\n" + _around(text, word)
        assert not problems, "\n".join(problems)

        explorers = _explorers(page)
        assert explorers.count() == spec.explorers, \
            f"expected {spec.explorers} explorer(s) with a picture, found {explorers.count()}"
        for k in range(spec.explorers):
            explorer = explorers.nth(k)
            image = explorer.locator(".widget-output img").first
            before = image.get_attribute("src")
            done = _move_first_control(explorer)
            page.wait_for_function("([img, old]) => img.isConnected === false || img.src !== old",
                                   arg=[image.element_handle(), before], timeout=30_000)
            after = explorer.locator(".widget-output img").first.get_attribute("src")
            assert after and after != before, f"explorer {k}: {done} did not redraw the figure"
            assert "could not update" not in explorer.inner_text(), explorer.inner_text()
        assert not problems, "\n".join(problems)

        if spec.exercise:
            _assert_unsolved_reports(page)
        print(f"{spec.path}: ran in {ran:.0f} s, whole check {time.monotonic() - started:.0f} s")
    finally:
        page.close()
        _shut_down_kernels(url, token, spec.path)  # a page that failed mid-run must not keep training
    assert _digest(notebook) == digest, f"running {spec.path} in the browser changed the file"
    assert set(REPO.rglob(".ipynb_checkpoints")) == checkpoints_before, "JupyterLab wrote checkpoints into the repo"


def _shut_down_kernels(url: str, token: str, path: str) -> None:
    """End the sessions (and kernels) JupyterLab opened for `path`, so the next page starts on a quiet machine."""
    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=30) as response:
        sessions = json.load(response)
    for session in sessions:
        if session.get("path") == path:
            request = urllib.request.Request(f"{url}/api/sessions/{session['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(request, timeout=60).close()


def _assert_unsolved_reports(page) -> None:
    """Every check report of an unsolved exercise is red, says "not implemented yet" and gives a hint."""
    reports = page.locator(".jp-RenderedHTMLCommon").filter(has_text="not implemented yet")
    assert reports.count() >= 1, "no check report says 'not implemented yet'"
    for k in range(reports.count()):
        report = reports.nth(k)
        bars = report.evaluate("""r => [...r.querySelectorAll('*')].map(e => getComputedStyle(e))
            .filter(s => parseFloat(s.borderLeftWidth) >= 2).map(s => s.borderLeftColor)""")
        reds = [c for c in bars if _is_red(c)]
        assert reds, f"check report {k} has no red bar (left borders: {bars}):\n{report.inner_text()}"
        # the hint of an unstarted exercise says where to start: the stub's NotImplementedError
        text = report.inner_text()
        hints = [line for line in text.splitlines() if re.search(r"\bhint\b|NotImplementedError", line, re.I)]
        assert hints, f"check report {k} gives no hint:\n{text}"


def _is_red(css_colour: str) -> bool:
    rgb = [int(v) for v in re.findall(r"\d+", css_colour)[:3]]
    return len(rgb) == 3 and rgb[0] > 150 and rgb[1] < 100 and rgb[2] < 100


def _around(text: str, word: str, width: int = 400) -> str:
    at = text.index(word)
    return text[max(0, at - width): at + width]
