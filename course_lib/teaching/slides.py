"""Standalone HTML slides from a lecture notebook, readable with no network.

Cells carry RISE's metadata (``cell.metadata.slideshow.slide_type``: "slide",
"subslide", "fragment", "skip", "notes" or "-"), the same that the slideshow
button of JupyterLab (jupyterlab-rise) reads, so one set of choices serves a
live session in JupyterLab and a file handed out after it.

nbconvert's own slides fetch reveal.js and MathJax from a CDN; these do not:
the page is one HTML file with its pictures embedded, a few lines of CSS and
JavaScript for navigation (arrow keys, space, click; ``s`` shows the speaker
notes), code highlighted by Pygments, and TeX rendered to SVG by matplotlib's
mathtext where it can (raw TeX otherwise).
"""

from __future__ import annotations

import html
import io
import re
from functools import lru_cache
from pathlib import Path

import nbformat

__all__ = ["SLIDE_TYPES", "slide_type", "build_pages", "render_html", "export_slides", "annotate"]

SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")


def slide_type(cell) -> str:
    """The RISE slide type of a cell ("-" when it carries none); an unknown one is an error."""
    kind = cell.get("metadata", {}).get("slideshow", {}).get("slide_type", "-")
    if kind not in SLIDE_TYPES:
        raise ValueError(f"cell {cell.get('id', '?')} has slide_type {kind!r}; expected one of {SLIDE_TYPES}")
    return kind


# --------------------------------------------------------------------------- pages


def build_pages(nb) -> list[dict]:
    """Group cells into pages: a "slide" or "subslide" cell starts a page; "-" continues it; a "fragment" joins it
    one key press later; "notes" become the page's speaker notes; "skip" cells are left out.

    Returns [{"cells": [(cell, fragment_index)], "notes": [cell]}]."""
    pages: list[dict] = []
    fragment = 0
    for cell in nb.cells:
        kind = slide_type(cell)
        if kind == "skip":
            continue
        if kind in ("slide", "subslide") or not pages:
            pages.append({"cells": [], "notes": []})
            fragment = 0
        if kind == "notes":
            pages[-1]["notes"].append(cell)
            continue
        if kind == "fragment":
            fragment += 1
        pages[-1]["cells"].append((cell, fragment))
    return [p for p in pages if p["cells"] or p["notes"]]


# --------------------------------------------------------------------------- rendering

_MATH = re.compile(r"(?<![\\$])\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$", re.S)


@lru_cache(maxsize=2048)
def _tex_svg(tex: str, display: bool) -> str | None:
    """TeX -> inline SVG with matplotlib's mathtext, or None where mathtext cannot parse it."""
    try:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(0.01, 0.01))
        fig.text(0, 0, f"${tex}$", fontsize=15 if display else 13)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.02, transparent=True)
    except Exception:  # mathtext knows a subset of TeX: keep the source visible
        return None
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)


def _markdown(text: str) -> str:
    import mistune

    pieces: list[str] = []

    def stash(match: re.Match) -> str:
        display = match.group(1) is not None
        tex = (match.group(1) if display else match.group(2)).strip()
        svg = _tex_svg(tex, display)
        if svg is None:
            rendered = f"<code class='tex'>{html.escape(tex)}</code>"
        else:
            rendered = f"<span class='math{' display' if display else ''}'>{svg}</span>"
        pieces.append(rendered)
        return f"@@MATH{len(pieces) - 1}@@"

    body = mistune.html(_MATH.sub(stash, text))
    return re.sub(r"@@MATH(\d+)@@", lambda m: pieces[int(m.group(1))], body)


def _code(source: str) -> str:
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        return highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))
    except ImportError:
        return f"<pre>{html.escape(source)}</pre>"


def _output(out) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        if out.get("name") == "stderr":  # progress bars and warnings: not for a slide
            return ""
        return f"<pre class='out'>{html.escape(_text(out.get('text', '')))}</pre>"
    if kind == "error":
        return f"<pre class='out error'>{html.escape(out.get('ename', ''))}: {html.escape(out.get('evalue', ''))}</pre>"
    data = out.get("data", {})
    if "image/png" in data:
        return f"<img alt='figure' src='data:image/png;base64,{_text(data['image/png']).strip()}'>"
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    if "text/html" in data:
        page = _text(data["text/html"])
        if re.search(r"<script|https?://", page, re.I):  # never let an output reach the network
            page = f"<pre class='out'>{html.escape(_text(data.get('text/plain', '')))}</pre>"
        return f"<div class='out html'>{page}</div>"
    if "text/markdown" in data:
        return _markdown(_text(data["text/markdown"]))
    if "text/plain" in data:
        return f"<pre class='out'>{html.escape(_text(data['text/plain']))}</pre>"
    return ""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _cell(cell, show_code: bool) -> str:
    if cell.cell_type == "markdown":
        return f"<div class='md'>{_markdown(cell.source)}</div>"
    if cell.cell_type != "code":
        return ""
    parts = []
    hide = cell.get("metadata", {}).get("jupyter", {}).get("source_hidden", False)
    if show_code and not hide and cell.source.strip():
        parts.append(f"<div class='code'>{_code(cell.source)}</div>")
    parts.extend(_output(o) for o in cell.get("outputs", []))
    return "".join(parts)


_CSS = """
html,body{margin:0;height:100%;background:#fafafa;font-family:Helvetica,Arial,sans-serif;color:#222}
.page{display:none;box-sizing:border-box;height:100vh;padding:3vh 5vw;overflow:auto;font-size:22px;line-height:1.4}
.page.current{display:block}
.frag{visibility:hidden}.frag.shown{visibility:visible}
h1{font-size:1.9em;color:#1f4e79}h2{font-size:1.6em;color:#1f4e79}h3{font-size:1.3em}
.code{background:#f3f3f3;border-left:4px solid #9ab;padding:2px 10px;font-size:0.75em;margin:8px 0}
pre{white-space:pre-wrap;margin:4px 0}
pre.out{font-size:0.72em;color:#333}pre.error{color:#a00}
img{max-width:100%;max-height:70vh;display:block;margin:8px auto}
.math svg{vertical-align:middle}.math.display{display:block;text-align:center}
code.tex{color:#555}
#bar{position:fixed;bottom:0;left:0;height:4px;background:#1f4e79}
#count{position:fixed;bottom:8px;right:14px;font-size:14px;color:#777}
.notes{display:none;position:fixed;bottom:20px;left:5vw;right:5vw;background:#fffbe6;border:1px solid #e0c060;
  padding:8px 14px;font-size:16px}
body.show-notes .page.current .notes{display:block}
"""

_JS = """
(function(){
  var pages=[].slice.call(document.querySelectorAll('.page')), i=0, f=0;
  function frags(){return pages[i].querySelectorAll('.frag');}
  function show(){
    pages.forEach(function(p,k){p.classList.toggle('current',k===i);});
    [].forEach.call(frags(),function(el){el.classList.toggle('shown',+el.dataset.fragment<=f);});
    document.getElementById('count').textContent=(i+1)+' / '+pages.length;
    document.getElementById('bar').style.width=(100*(i+1)/pages.length)+'%';
    history.replaceState(null,'','#'+(i+1));
  }
  function maxFrag(){var m=0;[].forEach.call(frags(),function(el){m=Math.max(m,+el.dataset.fragment);});return m;}
  function next(){if(f<maxFrag()){f++;}else if(i<pages.length-1){i++;f=0;}show();}
  function prev(){if(f>0){f--;}else if(i>0){i--;f=maxFrag();}show();}
  document.addEventListener('keydown',function(e){
    if(['ArrowRight','ArrowDown','PageDown',' '].indexOf(e.key)>=0){next();e.preventDefault();}
    else if(['ArrowLeft','ArrowUp','PageUp'].indexOf(e.key)>=0){prev();e.preventDefault();}
    else if(e.key==='Home'){i=0;f=0;show();}else if(e.key==='End'){i=pages.length-1;f=maxFrag();show();}
    else if(e.key==='s'){document.body.classList.toggle('show-notes');}
  });
  document.addEventListener('click',function(e){if(!e.target.closest('a'))next();});
  var start=parseInt((location.hash||'#1').slice(1),10);
  if(start>=1&&start<=pages.length){i=start-1;}
  show();
})();
"""


def render_html(nb, title: str = "", show_code: bool = True) -> str:
    """One self-contained HTML page of slides for the notebook `nb` (executed or not)."""
    pages = build_pages(nb)
    if not pages:
        raise ValueError("the notebook has no cell to show: every cell is marked 'skip'")
    body = []
    for n, page in enumerate(pages, 1):
        cells = []
        for cell, fragment in page["cells"]:
            content = _cell(cell, show_code)
            if not content:
                continue
            cls = "frag" if fragment else "cell"
            cells.append(f"<div class='{cls}' data-fragment='{fragment}'>{content}</div>")
        notes = "".join(_cell(c, show_code=False) for c in page["notes"])
        if notes:
            cells.append(f"<aside class='notes'>{notes}</aside>")
        body.append(f"<section class='page' id='page-{n}'>{''.join(cells)}</section>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "".join(body) + "<div id='bar'></div><div id='count'></div>"
            f"<script>{_JS}</script></body></html>")


def export_slides(notebook: str | Path, out_dir: str | Path, execute: bool = True, timeout: int = 600) -> Path:
    """Write `out_dir/<name>.slides.html` for a lecture notebook, executed first (in a copy) so the slides carry
    its outputs. The notebook file itself is not modified."""
    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.slides.html"
    title = next((c.source.lstrip("# ").splitlines()[0] for c in nb.cells
                  if c.cell_type == "markdown" and c.source.startswith("#")), path.stem)
    target.write_text(render_html(nb, title=title), encoding="utf-8")
    return target


# --------------------------------------------------------------------------- default metadata


_SETUP = re.compile(r"(import |from \S+ import |%|[A-Z_]+\s*=|\w*\.?seed_everything\(|torch\.manual_seed\(|"
                    r"warnings\.|plt\.rcParams|torch\.set_num_threads\(|print\(f?\"(seed|device))")


def _is_setup(source: str) -> bool:
    """A cell of imports, seeds and device choice only: the machinery of the notebook, not an idea."""
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(_SETUP.match(line) or line in (")", "(") or line.endswith(",") for line in lines)


def annotate(nb, overwrite: bool = False) -> int:
    """Give cells without slide metadata the choices a teacher would make by default; returns how many changed.

    A top-level heading (# or ##) opens a slide and ### a subslide; the imports and set-up cell before the
    first idea are skipped; a code cell right after the prose that motivates it is a fragment of the same
    slide, so the question shows before the answer; a short remark on an output stays with it (-), a longer
    paragraph after an output is the next step of the argument and gets its own subslide.
    Cells already carrying a slide_type are kept unless `overwrite`."""
    changed = 0
    seen_heading = False
    for k, cell in enumerate(nb.cells):
        meta = cell.setdefault("metadata", {})
        if not overwrite and "slide_type" in meta.get("slideshow", {}):
            seen_heading = seen_heading or cell.cell_type == "markdown" and cell.source.lstrip().startswith("#")
            continue
        src = cell.source.lstrip()
        if cell.cell_type == "markdown" and re.match(r"#{1,2}\s", src):
            kind, seen_heading = "slide", True
        elif cell.cell_type == "markdown" and src.startswith("###"):
            kind = "subslide"
        elif cell.cell_type == "code" and (not seen_heading or _is_setup(src)):
            kind = "skip"
        elif cell.cell_type == "code" and k > 0 and nb.cells[k - 1].cell_type == "markdown":
            kind = "fragment"
        elif cell.cell_type == "markdown" and k > 0 and nb.cells[k - 1].cell_type == "code" and len(src) > 300:
            kind = "subslide"  # a new step of the argument, not a remark on the output above
        else:
            kind = "-"
        meta.setdefault("slideshow", {})["slide_type"] = kind
        changed += 1
    return changed
