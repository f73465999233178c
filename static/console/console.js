// Progressive enhancement only: the console works without JavaScript.
(function () {
  // A "select all" box ticks every box of its own list: the queue's cases, a case's related cases.
  [["select-all", "cases"], ["related-all", "related"]].forEach(function (pair) {
    var all = document.getElementById(pair[0]);
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="' + pair[1] + '"]').forEach(function (box) { box.checked = all.checked; });
    });
  });
})();
