"""Scorecard renderings: markdown, HTML and PNG of the rows ``scorecard.compare`` produced."""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..scorecard import Row, doc_warnings

ICON = {"pass": "✅ pass", "regressed": "❌ regressed", "improved": "🟢 improved", "changed": "⚠️ changed",
        "missing": "❓ missing", "new": "➕ new"}


def format_value(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.2f}"
    return str(v)


def md(value) -> str:
    """Text from a results document made inert in a markdown table cell (no markup, no column breaks)."""
    text = " ".join(str(value).split())
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~])", r"\\\1", text)


def md_code(value) -> str:
    """A code span that holds any text: pipes escaped, a longer fence when the text has backticks."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _context(base: dict, cur: dict) -> list[tuple]:
    out = []
    for name in sorted(set(base.get("tasks", {})) | set(cur.get("tasks", {}))):
        b, c = base.get("tasks", {}).get(name, {}), cur.get("tasks", {}).get(name, {})
        out.append((name, b.get("n_samples"), c.get("n_samples"), (b.get("data") or {}).get("fingerprint"),
                    (c.get("data") or {}).get("fingerprint"), c.get("version")))
    return out


def to_markdown(rows: list[Row], base: dict, cur: dict, v: dict, problems: list[str], show_pass: bool = True) -> str:
    head = "## Scorecard: " + ("✅ no regressions" if v["passed"] else "❌ REGRESSION")
    lines = [head, "", " · ".join(f"{k}: {n}" for k, n in v["counts"].items() if n), ""]
    for role, doc in (("baseline", base), ("current", cur)):
        lines += [f"**WARNING ({role}):** {md(w)}" for w in doc_warnings(doc)]
    if lines[-1] != "":
        lines.append("")
    lines += ["| task | n (base → cur) | data fingerprint | version |", "|---|---|---|---|"]
    for name, nb, nc, fb, fc, ver in _context(base, cur):
        fb, fc, nb, nc, ver = (md(format_value(x)) for x in (fb, fc, nb, nc, ver))
        fp = fb if fb == fc else f"{fb} → **{fc}**"
        lines.append(f"| {md(name)} | {nb} → {nc} | {fp} | {ver} |")
    if problems:
        lines += ["", "**Compared despite:** " + "; ".join(md(p) for p in problems)]
    lines += ["", "| metric | status | baseline | current | Δ | tolerance |", "|---|---|---|---|---|---|"]
    order = {"regressed": 0, "missing": 1, "changed": 2, "improved": 3, "new": 4, "pass": 5}
    for r in sorted(rows, key=lambda r: (order[r.status], r.metric)):
        if r.status == "pass" and not show_pass:
            continue
        delta = "—" if r.delta is None else (f"{100 * r.delta:+.1f}%" if "rel" in r.tolerance else f"{r.delta:+.2f}")
        lines.append(f"| {md_code(r.metric)} | {ICON[r.status]} | {md(format_value(r.baseline))} | "
                     f"{md(format_value(r.current))} | {delta} | "
                     f"{md(r.tolerance)} |")
    return "\n".join(lines) + "\n"


def to_html(markdown_rows: list[Row], v: dict, title: str) -> str:
    colors = {"pass": "#e8f5e9", "regressed": "#ffcdd2", "improved": "#c8e6c9", "changed": "#fff3cd",
              "missing": "#eceff1", "new": "#e3f2fd"}
    body = "".join(
        f"<tr style='background:{colors[r.status]}'><td><code>{html.escape(r.metric)}</code></td>"
        f"<td>{html.escape(ICON[r.status])}</td><td>{html.escape(format_value(r.baseline))}</td>"
        f"<td>{html.escape(format_value(r.current))}</td><td>{html.escape(format_value(r.delta))}</td>"
        f"<td>{html.escape(r.tolerance)}</td></tr>" for r in markdown_rows)
    status = "no regressions" if v["passed"] else "REGRESSION"
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
            f"<h2>{html.escape(title)}: {status}</h2><table><tr><th>metric</th><th>status</th><th>baseline</th>"
            f"<th>current</th><th>Δ</th><th>tolerance</th></tr>{body}</table>")


def to_png(rows: list[Row], v: dict, path: Path) -> None:
    """Each numeric metric's change in units of its tolerance: the band is the pass zone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = [r for r in rows if r.delta is not None]
    colors = {"pass": "#4caf50", "regressed": "#e53935", "improved": "#1e88e5", "changed": "#fb8c00"}
    fig, ax = plt.subplots(figsize=(8, 0.28 * max(len(num), 4) + 1.2))
    for i, r in enumerate(num):
        x = max(-5.0, min(5.0, r.delta / (r.tol or 1e-9)))
        ax.plot([0, x], [i, i], color=colors.get(r.status, "grey"), lw=2)
        ax.plot(x, i, "o", color=colors.get(r.status, "grey"))
    ax.axvspan(-1, 1, color="#e8f5e9", zorder=0)
    ax.set_yticks(range(len(num)), [r.metric for r in num], fontsize=7)
    ax.set_xlim(-5.5, 5.5)
    ax.set_xlabel("change / tolerance (clipped at ±5; green band = pass)")
    ax.set_title("scorecard: " + ("no regressions" if v["passed"] else "REGRESSION"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


