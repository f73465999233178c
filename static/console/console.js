// Progressive enhancement only: the console works without JavaScript.
(function () {
  var all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll('input[name="cases"]').forEach(function (box) { box.checked = all.checked; });
  });
})();
