// Progressive enhancement only: the search form works without this file.
// Type-ahead for the need box: fills its <datalist> from /api/v1/suggest.
(function () {
  "use strict";
  var input = document.getElementById("need");
  var list = document.getElementById("need-suggestions");
  if (!input || !list || !window.fetch) { return; }
  var url = input.getAttribute("data-suggest");
  var timer = null;
  var pending = null;

  function fill(items) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    items.slice(0, 8).forEach(function (item) {
      var option = document.createElement("option");
      option.value = item.label;  // textContent-safe: never parsed as HTML
      list.appendChild(option);
    });
  }

  function ask() {
    var text = input.value.trim();
    if (text.length < 2) { fill([]); return; }
    if (pending) { pending.abort(); }
    pending = new AbortController();
    fetch(url + "?q=" + encodeURIComponent(text), {
      signal: pending.signal, headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : [];
    }).then(fill).catch(function () { /* offline or aborted: no suggestions */ });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(ask, 150);
  });
}());
