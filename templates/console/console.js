// Live counts on the overview: refresh the in-progress table every few seconds (no framework).
(function () {
  var table = document.getElementById("live");
  if (!table) return;
  function refresh() {
    fetch(table.dataset.live, {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (!data) return;
      data.forEach(function (m) {
        var row = table.querySelector('tr[data-mailing="' + m.id + '"]');
        if (!row) return;
        Object.keys(m.cells).forEach(function (field) {
          var cell = row.querySelector('[data-field="' + field + '"]');
          if (cell) cell.textContent = m.cells[field];
        });
      });
    }).catch(function () {});
  }
  setInterval(refresh, 5000);
})();
