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
    var terms=box.value.toLowerCase().split(/\s+/).filter(Boolean);
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
