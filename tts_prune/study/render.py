"""HTML for readers: executed notebooks rendered with nbconvert, offline widget scripts, reports/index.html."""
from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

from .. import paths
from .grid import Cell, StudyConfig


WIDGET_ASSETS = {"embed-amd.js": "node_modules/@jupyter-widgets/html-manager/dist/embed-amd.js",
                 "require.js": "node_modules/requirejs/require.js"}


def install_widget_assets(reports: Path) -> bool:
    """Put the ipywidgets HTML manager and require.js in reports/_static/ so widgets render offline.

    Uses npm (the registry client) once; returns False, and the HTML falls back to the CDN scripts and
    the explorer's static figures, when npm is missing or fails.
    """
    static = Path(reports) / "_static"
    cache = paths.REPORTS_DIR / "_static"  # one npm install per checkout, copied into other report trees
    if not all((cache / name).exists() for name in WIDGET_ASSETS):
        npm = shutil.which("npm")
        if npm is None:
            return False
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--silent",
                               "@jupyter-widgets/html-manager@1", "requirejs@2"], capture_output=True, text=True)
        if done.returncode != 0:
            return False
        for name, rel in WIDGET_ASSETS.items():
            shutil.copyfile(cache / rel, cache / name)
    if static.resolve() != cache.resolve():
        static.mkdir(parents=True, exist_ok=True)
        for name in WIDGET_ASSETS:
            shutil.copyfile(cache / name, static / name)
    return True


def render_html(ipynb: Path, target: Path) -> Path:
    """nbconvert HTML with tqdm streams coalesced and, when present, local widget scripts."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.CoalesceStreamsPreprocessor.enabled = True  # tqdm writes one stderr line per update
    exporter = HTMLExporter(config=config)
    static = _static_dir(target)
    if static is not None:
        rel = Path(*[".."] * (len(target.relative_to(static.parent).parts) - 1))
        exporter.widget_renderer_url = (rel / "_static" / "embed-amd.js").as_posix()
        exporter.require_js_url = (rel / "_static" / "require.js").as_posix()
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    target.write_text(body, encoding="utf-8")
    return target


def _static_dir(target: Path) -> Path | None:
    for parent in Path(target).resolve().parents:
        if all((parent / "_static" / name).exists() for name in WIDGET_ASSETS):
            return parent / "_static"
    return None


def write_manifest(study: StudyConfig, cells: list[Cell], reports: Path) -> Path:
    path = Path(reports) / study.name / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"notebook": c.notebook, "axes": c.axes, "ipynb": c.output.relative_to(reports).as_posix(),
             "html": c.html.relative_to(reports).as_posix(), "done": c.marker.exists() and c.html.exists(),
             "figures_dir": str(c.parameters.get("figures_dir", ""))}  # 05 leaves its claims and headline there
            for c in cells]
    path.write_text(json.dumps({"study": study.name, "description": study.description, "cells": rows}, indent=1))
    return path


HEADLINE = "headline.png"   # what 05-report writes for the index: its headline figure ...
CLAIMS = "claims.csv"       # ... and its claims table


def _headline(reports: Path, data: dict) -> str:
    """The study's 05-report headline figure (embedded), claims table and link to the full report, if it ran."""
    import base64

    import pandas as pd

    report = next((r for r in data["cells"] if r["notebook"] == "05-report" and (reports / r["html"]).exists()), None)
    if report is None or not report.get("figures_dir"):
        return ""
    figures = Path(report["figures_dir"])
    parts = [f'<p><a href="{html.escape(report["html"])}"><b>Full report (05-report)</b></a></p>']
    if (figures / HEADLINE).exists():
        data_uri = base64.b64encode((figures / HEADLINE).read_bytes()).decode()
        parts.append(f'<img style="max-width:100%" alt="headline figure" src="data:image/png;base64,{data_uri}">')
    if (figures / CLAIMS).exists():
        claims = pd.read_csv(figures / CLAIMS)
        parts.append("<h3>Claims the records support, and those they cannot decide</h3>"
                     + claims.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, na_rep=""))
    return "".join(parts)


def write_index(reports: Path) -> Path:
    """reports/index.html: per study, 05-report's headline figure, its claims table and a link to the full report,
    then every cell linked to its HTML and notebook."""
    reports = Path(reports)
    sections = []
    for manifest in sorted(reports.glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        rows = []
        for row in data["cells"]:
            status = "done" if (reports / row["html"]).exists() else "not run"
            link = (f'<a href="{html.escape(row["html"])}">report</a> · <a href="{html.escape(row["ipynb"])}">ipynb</a>'
                    if status == "done" else "")
            axes = ", ".join(f"{k}={v}" for k, v in row["axes"].items()) or "all runs"
            rows.append(f"<tr><td>{html.escape(row['notebook'])}</td><td>{html.escape(axes)}</td>"
                        f"<td>{status}</td><td>{link}</td></tr>")
        sections.append(f"<h2>{html.escape(data['study'])}</h2><p>{html.escape(data.get('description', ''))}</p>"
                        + _headline(reports, data) + f"<h3>All {len(rows)} cells</h3>"
                        "<table><tr><th>notebook</th><th>parameters</th><th>status</th><th>links</th></tr>"
                        + "".join(rows) + "</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>tts-prune reports</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            "<h1>tts-prune: executed study notebooks</h1>" + ("".join(sections) or "<p>No study has run yet.</p>")
            + "</body></html>")
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "index.html").write_text(page, encoding="utf-8")
    return reports / "index.html"
