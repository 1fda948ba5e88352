"""The HTML shell every page shares: navigation, time range picker, refresh control, and the view
model embedded as JSON for the page's script to render (the same object ``/api/...`` returns, so
a refresh re-renders from a fetch without reloading the page). Plain string templates, every
inserted value escaped (Jinja2 is not a dependency)."""
from __future__ import annotations

import html

from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from dashboard.routes.static import asset_url

NAV = (("/", "Overview"), ("/jobs", "Jobs"), ("/nodes", "Nodes"), ("/users", "Users"), ("/fabric", "Fabric"),
       ("/reliability", "Reliability"), ("/alerts", "Alerts"))

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ClusterWatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
{plotly}<script src="{app}" defer></script>
<script src="{page}" defer></script>{sections}
</head><body data-page="{script}" data-api="{api}">
<header><a class="brand" href="/">ClusterWatch</a><nav>{nav}</nav>
<div class="controls">
<label>Range <select id="range">{ranges}</select></label>
<label>Refresh <select id="refresh"><option value="0">off</option><option value="5">5 s</option>
<option value="10">10 s</option><option value="30">30 s</option><option value="60">1 min</option></select></label>
<span id="updated" aria-live="polite"></span></div></header>
<main><h1>{heading}</h1><div id="error" role="alert" hidden></div><div id="content"></div></main>
<script type="application/json" id="view">{data}</script>
</body></html>
"""
RANGES = ("15m", "1h", "6h", "24h", "7d")
# Pages that draw charts. They load plotly.js's "cartesian" partial bundle (heatmap, scatter, bar...:
# every trace the pages use), the same plotly.js release as the plotly package's full bundle but
# 1.5 MB instead of 4.8 MB, which Chromium compiles and runs in about half the time: on a first
# visit that is most of the time to the first chart. It loads ``async`` so that the page's own
# small scripts render the view (KPIs, tables) without waiting for it; charts are drawn when it has
# arrived (``CW.afterRender``, see app.js). Pages without charts never load it.
PLOTLY_PAGES = frozenset({"overview", "job", "node", "reliability"})
PLOTLY = "plotly-cartesian.min.js"
# Sections of a page kept in their own script, loaded after the page's (the job page's Continuity).
SECTION_SCRIPTS = {"job": ("job_continuity.js",)}


def render_page(title: str, script: str, api: str, view: BaseModel, heading: str | None = None) -> HTMLResponse:
    nav = "".join(f'<a href="{href}">{html.escape(label)}</a>' for href, label in NAV)
    ranges = "".join(f'<option value="{r}">{r}</option>' for r in RANGES)
    # "<" escaped so that no value can close the script element ("</script>" in a job name).
    # pydantic-core's encoder: compact, NaN/inf as null (json.dumps would write NaN, which
    # JSON.parse rejects), and several times faster on a 512-GPU job's series.
    data = view.model_dump_json().replace("<", "\\u003c")
    plotly = (f'<script id="plotly" src="{asset_url(PLOTLY)}" async></script>\n'
              if script in PLOTLY_PAGES else "")
    body = _TEMPLATE.format(title=html.escape(title), heading=html.escape(heading or title),
                            script=html.escape(script), api=html.escape(api, quote=True), nav=nav,
                            ranges=ranges, data=data, css=asset_url("dashboard.css"), plotly=plotly,
                            app=asset_url("app.js"), page=html.escape(asset_url(f"{script}.js"), quote=True),
                            sections="".join(f'\n<script src="{html.escape(asset_url(name), quote=True)}" defer></script>'
                                             for name in SECTION_SCRIPTS.get(script, ())))
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})
