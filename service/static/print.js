// Progressive enhancement for the printable resource list: a "Print this page" button.
// Without this file the page says to use the browser's own Print command.
(function () {
  "use strict";
  var button = document.getElementById("print-now");
  var hint = document.getElementById("print-hint");
  if (!button || typeof window.print !== "function") { return; }
  button.hidden = false;
  if (hint) { hint.hidden = true; }
  button.addEventListener("click", function () { window.print(); });
}());
