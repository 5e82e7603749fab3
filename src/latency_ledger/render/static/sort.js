// Sort the endpoints table by a column: buttons in <th>, values in td[data-v].
(function () {
  "use strict";
  var tables = document.querySelectorAll("table[data-sortable]");
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.querySelectorAll("th[data-col]");
    Array.prototype.forEach.call(heads, function (th) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var col = Number(th.getAttribute("data-col"));
        var numeric = th.getAttribute("data-type") !== "text";
        var descending = th.getAttribute("aria-sort") !== "descending";
        if (!numeric) { descending = th.getAttribute("aria-sort") === "ascending"; }
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v");
          var y = b.cells[col].getAttribute("data-v");
          var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
        Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      });
    });
    table.classList.add("js-sortable");
  });
})();
