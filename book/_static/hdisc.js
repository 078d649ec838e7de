// ipywidgets' HTML manager typesets widget labels with MathJax 2's MathJax.Hub.Queue, but
// the book loads MathJax 3, which has no Hub: give it one that typesets with MathJax 3.
(function () {
  function shim() {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (el && window.MathJax.typesetPromise) { window.MathJax.typesetPromise([el]); }
        }
      };
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
  window.addEventListener("load", shim);
})();
