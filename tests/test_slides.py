"""Slides: RISE metadata on every lecture notebook, an offline HTML export that renders in a real browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib.teaching.slides import SLIDE_TYPES, annotate, build_pages, export_slides, render_html, slide_type

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, source, slide in cells:
        cell = (nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell)(source)
        if slide is not None:
            cell.metadata["slideshow"] = {"slide_type": slide}
        nb.cells.append(cell)
    return nb


def test_pages_follow_the_slide_types():
    nb = _nb(("md", "# Title", "slide"), ("code", "import torch", "skip"), ("md", "why?", "-"),
             ("code", "1 + 1", "fragment"), ("md", "say this aloud", "notes"), ("md", "## Next", "slide"),
             ("md", "### Detail", "subslide"))
    pages = build_pages(nb)
    assert [len(p["cells"]) for p in pages] == [3, 1, 1]
    assert [f for _, f in pages[0]["cells"]] == [0, 0, 1]
    assert [c.source for c in pages[0]["notes"]] == ["say this aloud"]


def test_an_unknown_slide_type_is_named():
    with pytest.raises(ValueError, match="slide_type 'slid'"):
        build_pages(_nb(("md", "# x", "slid")))


def test_default_choices_skip_the_setup_and_reveal_code_after_its_question():
    nb = _nb(("md", "# Title", None), ("code", "import torch\nSEED = 0\ncourse_lib.seed_everything(SEED)", None),
             ("md", "## A question", None), ("code", "x = 1", None), ("md", "x" * 400, None))
    assert annotate(nb) == 5
    assert [slide_type(c) for c in nb.cells] == ["slide", "skip", "slide", "fragment", "subslide"]
    nb.cells[3].metadata["slideshow"]["slide_type"] = "-"
    assert annotate(nb) == 0 and slide_type(nb.cells[3]) == "-"  # a teacher's choice is kept


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_every_lecture_notebook_carries_slide_metadata(path):
    nb = nbformat.read(path, as_version=4)
    kinds = [slide_type(c) for c in nb.cells]
    unmarked = [i for i, c in enumerate(nb.cells) if "slide_type" not in c.metadata.get("slideshow", {})]
    assert not unmarked, f"{path.name}: cells {unmarked} have no slide_type (python -m course_lib slides --annotate)"
    assert kinds[0] == "slide" and kinds.count("slide") >= 3, f"{path.name}: {kinds}"
    assert set(kinds) <= set(SLIDE_TYPES)


def test_render_html_is_self_contained_and_renders_tex():
    nb = _nb(("md", "# Scaled $\\sqrt{d_k}$", "slide"), ("code", "print('hi')", "fragment"))
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n"),
                           nbformat.v4.new_output("stream", name="stderr", text="progress 50%\n")]
    page = render_html(nb, title="t")
    assert "<svg" in page and "hi\n" in page and "progress 50%" not in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert "<script src" not in page and "<link" not in page


# --------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("COURSE_BROWSER_TEST", "").lower() == "required"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed (it is in requirements.txt: run make test)"
    else:
        if CHROMIUM:
            return sync_playwright
        reason = "no Chromium on this machine (Debian: apt-get install -y chromium)"
    if REQUIRED:
        pytest.fail(f"browser test required (COURSE_BROWSER_TEST=required) but {reason}")
    pytest.skip(reason)


def test_exported_slides_work_offline_in_chromium(tmp_path):
    sync_playwright = _browser_or_skip()
    nb = nbformat.read(ROOT / "notebooks" / "00_welcome.ipynb", as_version=4)
    annotate(nb)  # no-op once the notebook carries its metadata
    nb.cells.append(nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.title('a figure')\nplt.show()",
        metadata={"slideshow": {"slide_type": "slide"}}))
    src = tmp_path / "00_welcome.ipynb"
    nbformat.write(nb, src)
    # executed in a copy beside the real notebooks, so relative paths work as in the course
    deck = export_slides(src, tmp_path / "slides", execute=True, timeout=300)
    assert nbformat.read(src, as_version=4).cells[0].get("outputs") is None  # the notebook is not modified

    requests = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def guard(route):
                requests.append(route.request.url)
                if route.request.url.startswith(("file://", "data:")):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", guard)
            page.goto(deck.as_uri())
            current = page.locator(".page.current")
            assert current.count() == 1
            assert "Welcome" in current.inner_text() or "00" in current.inner_text()
            total = int(page.locator("#count").inner_text().split("/")[1])
            assert total == len(build_pages(nb)) >= 3
            page.screenshot(path=str(tmp_path / "slide-1.png"))
            first = page.locator(".page.current").get_attribute("id")
            for _ in range(40):  # advance past fragments to the next page
                page.keyboard.press("ArrowRight")
                if page.locator(".page.current").get_attribute("id") != first:
                    break
            assert page.locator(".page.current").get_attribute("id") != first
            page.keyboard.press("End")
            last = page.locator(".page.current")
            assert last.locator("img").count() == 1 and last.locator("img").evaluate("i => i.naturalWidth") > 100
            page.screenshot(path=str(tmp_path / "slide-last.png"))
            assert not errors, errors
        finally:
            browser.close()
    outside = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert not outside, f"the slides tried to reach the network: {outside}"
    assert requests and requests[0].startswith("file://")
