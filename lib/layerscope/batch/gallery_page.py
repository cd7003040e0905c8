"""HTML pieces of the gallery: page shell, style, the results table and its small script.

The page works opened from disk (``file://``) with no server and no network: plotly.js is
inlined once (plotly's bundled copy), every figure is inline JSON drawn when it scrolls into
view (a sweep can hold hundreds of figures), and the table sorts on a header click and filters
on the words typed in the box above it.
"""

from __future__ import annotations

import html
import json
import math

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 1.5em 4em;
color:#222}
h1{margin:.8em 0 .2em} h2{margin-top:2em;border-bottom:1px solid #ddd}
nav a{margin-right:1em} .muted{color:#777}
.scroll{overflow-x:auto;max-width:100%}
table.results{border-collapse:collapse;font-size:12px;white-space:nowrap}
table.results th{cursor:pointer;background:#f3f3f3;position:sticky;top:0;text-align:left}
table.results th[data-sort=asc]::after{content:" \\25B2"}
table.results th[data-sort=desc]::after{content:" \\25BC"}
table.results td,table.results th{border:1px solid #ddd;padding:2px 6px}
.ok{color:#1a7f37} .failed{color:#c62828;font-weight:bold} .pending{color:#a66f00}
.SUPPORTED{background:#e6f4ea} .NOT_SUPPORTED{background:#fde8e8}
.INCONCLUSIVE{background:#fff4d6} .UNDEFINED{background:#eee}
#filter{width:28em;padding:4px;margin:.5em 0}
article.run{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:1em 0}
article.run pre{white-space:pre-wrap;background:#fafafa;padding:.5em;font-size:12px}
.figure{min-height:420px;overflow-x:auto} figcaption{font-size:12px;color:#777}
dl.params{display:grid;grid-template-columns:max-content auto;gap:0 1em;font-size:12px}
dl.params dt{font-weight:bold} dl.params dd{margin:0}
iframe.figure{width:100%;height:600px;border:0}
"""

SCRIPT = """
(function(){
  function val(row,i){var c=row.cells[i];return c?c.getAttribute('data-v')||c.textContent:'';}
  function num(s){return s.trim()!==''&&isFinite(Number(s));}
  function sortBy(th){
    var table=th.closest('table'),tbody=table.tBodies[0],i=th.cellIndex;
    var dir=th.getAttribute('data-sort')==='asc'?'desc':'asc';
    table.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-sort');});
    th.setAttribute('data-sort',dir);
    var rows=Array.prototype.slice.call(tbody.rows);
    rows.sort(function(a,b){
      var x=val(a,i),y=val(b,i);
      if(x===''||y===''){return x===y?0:(x===''?1:-1);}  // empty cells last, both ways
      var c=(num(x)&&num(y))?Number(x)-Number(y):x.localeCompare(y);
      return dir==='asc'?c:-c;});
    rows.forEach(function(r){tbody.appendChild(r);});
  }
  document.querySelectorAll('table.results th').forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);});});
  var box=document.getElementById('filter');
  if(box){box.addEventListener('input',function(){
    var terms=box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    document.querySelectorAll('table.results tbody tr').forEach(function(r){
      var t=r.textContent.toLowerCase();
      r.style.display=terms.every(function(w){return t.indexOf(w)>=0;})?'':'none';});
    var n=document.querySelectorAll('table.results tbody tr:not([style*="none"])').length;
    document.getElementById('shown').textContent=n;});}
  function draw(div){
    var spec=JSON.parse(document.getElementById(div.getAttribute('data-fig')).textContent);
    Plotly.newPlot(div,spec.data,spec.layout||{},{responsive:true,displaylogo:false});
  }
  var figs=document.querySelectorAll('div.figure[data-fig]');
  if('IntersectionObserver' in window){
    var io=new IntersectionObserver(function(es){es.forEach(function(e){
      if(e.isIntersecting){io.unobserve(e.target);draw(e.target);}});},{rootMargin:'300px'});
    figs.forEach(function(d){io.observe(d);});
  }else{figs.forEach(draw);}
})();
"""


def esc(v) -> str:
    return html.escape("" if v is None else str(v))


def cell_text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def results_table(rows: list[dict], columns: list[str], run_ids: dict[str, str]) -> str:
    """The sortable, filterable results table; the key cell links to the run's card."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            text = cell_text(v)
            cls = ""
            if c == "status":
                cls = f' class="{esc(text)}"'
            elif c.startswith("verdict.") and text:
                cls = f' class="{esc(text).replace(" ", "_")}"'
            full = f' data-v="{esc(repr(v))}"' if isinstance(v, float) else ""
            if c == "key" and r["key"] in run_ids:
                text_html = f'<a href="#{run_ids[r["key"]]}">{esc(text)}</a>'
            else:
                text_html = esc(text)
            cells.append(f"<td{cls}{full}>{text_html}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<input id="filter" placeholder="filter rows: words that must all appear, e.g. '
            f'failed tiny-bert"> <span class="muted"><span id="shown">{len(rows)}</span> of '
            f'{len(rows)} rows; click a header to sort</span>'
            f'<div class="scroll"><table class="results"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def figure_block(fig_id: str, spec_json: str, caption: str) -> str:
    """A placeholder drawn by the script + its figure JSON (``</`` escaped for <script>)."""
    safe = spec_json.replace("</", "<\\/")
    return (f'<figure><div class="figure" data-fig="{fig_id}"></div>'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
            f'<script type="application/json" id="{fig_id}">{safe}</script>')


def iframe_block(src: str, caption: str) -> str:
    return (f'<figure><iframe class="figure" src="{esc(src)}"></iframe>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def params_list(params: dict) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(json.dumps(v) if not isinstance(v, str) else v)}"
                    f"</dd>" for k, v in params.items())
    return f'<dl class="params">{items}</dl>'


def page(title: str, body: str, plotly_js: str | None) -> str:
    js = f"<script>{plotly_js}</script>" if plotly_js else ""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}{js}<script>{SCRIPT}</script>"
            f"</body></html>")
