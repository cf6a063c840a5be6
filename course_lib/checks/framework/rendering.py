"""Reports of a ``CheckResult``: plain text (terminal, CLI) and HTML (Jupyter).

Both show points with ``format_points`` (4 significant digits, as the grader's
CLI and CSV do). In HTML, text in `backticks` is shown as code. After an
essential failure, one line says why the sub-checks below it were skipped.
"""

from __future__ import annotations

import html
import re

from .results import ENCOURAGEMENT, NOT_IMPLEMENTED, CheckResult

_ICONS = {"passed": "✓", "failed": "✗", "skipped": "–"}
_COLORS = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#6e7781"}


def format_points(x: float) -> str:
    """Points as every report shows them: 4 significant digits (2, 0.25, 1.35)."""
    return f"{x:.4g}"


def _heading(result: CheckResult) -> str:
    name = f" · {result.title}" if result.title else ""
    fn = f" (`{result.function}`)" if result.function else ""
    return f"Exercise {result.id}{name}{fn}"


def _skip_reasons(result: CheckResult) -> dict[int, str]:
    """Index of each sub-check that starts a run of skipped ones -> why they were skipped."""
    reasons, previous = {}, None
    for i, s in enumerate(result.subchecks):
        if s.status == "skipped" and s.message and s.message != previous:
            reasons[i] = s.message
        previous = s.message if s.status == "skipped" else None
    return reasons


def render_text(result: CheckResult) -> str:
    """A plain-text report: one line per sub-check, points, one hint."""
    pts = format_points
    verdict = "PASSED" if result.passed else "not passed yet"
    lines = [f"{_heading(result)}: {pts(result.points)} / {pts(result.max_points)} points, {verdict}"]
    if not result.subchecks:
        lines += [f"  {m}" for m in result.messages]
        return "\n".join(lines)
    if result.messages and result.messages[0] == NOT_IMPLEMENTED:
        lines += [f"  ✗ {NOT_IMPLEMENTED}", f"  {ENCOURAGEMENT}"]
        return "\n".join(lines)
    reasons = _skip_reasons(result)
    for i, s in enumerate(result.subchecks):
        if i in reasons:
            lines.append(f"  ({reasons[i]}:)")
        share = f"  [{pts(s.points)}/{pts(s.max_points)}]" if s.max_points else ""
        lines.append(f"  {_ICONS[s.status]} {s.name}{share}")
        if s.status == "failed":
            lines.append(f"      {s.message}")
    if result.hint:
        lines.append(f"Hint: {result.hint}")
    return "\n".join(lines)


def _code(text: str) -> str:
    """Escaped HTML in which `code` becomes <code>code</code>."""
    parts = re.split(r"`([^`\n]+)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def render_html(result: CheckResult) -> str:
    """The same report as HTML, for Jupyter."""
    pts = format_points
    color = _COLORS["passed" if result.passed else "failed"]
    head = (f"<div style='border-left:4px solid {color};padding:4px 10px;font-family:sans-serif'>"
            f"<b>{_code(_heading(result))}</b>: <b style='color:{color}'>{pts(result.points)} / "
            f"{pts(result.max_points)} points</b>{' · passed ✓' if result.passed else ''}")
    if not result.subchecks or (result.messages and result.messages[0] == NOT_IMPLEMENTED):
        body = "".join(f"<div>{_code(m)}</div>" for m in result.messages)
        return head + body + "</div>"
    rows = []
    reasons = _skip_reasons(result)
    for i, s in enumerate(result.subchecks):
        if i in reasons:
            rows.append(f"<tr><td></td><td style='color:#6e7781;font-style:italic'>{_code(reasons[i])}:</td>"
                        "<td></td></tr>")
        share = f"{pts(s.points)}/{pts(s.max_points)}" if s.max_points else ""
        detail = (f"<div style='color:#57606a;margin-left:1.4em'>{_code(s.message)}</div>"
                  if s.status == "failed" else "")
        muted = " style='color:#6e7781'" if s.status == "skipped" else ""
        rows.append(f"<tr><td style='color:{_COLORS[s.status]};font-weight:bold'>{_ICONS[s.status]}</td>"
                    f"<td{muted}>{_code(s.name)}{detail}</td><td style='text-align:right'>{share}</td></tr>")
    table = "<table style='border-collapse:collapse;margin-top:4px'>" + "".join(rows) + "</table>"
    hint = f"<div style='margin-top:4px'><b>Hint:</b> {_code(result.hint)}</div>" if result.hint else ""
    return head + table + hint + "</div>"
