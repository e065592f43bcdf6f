// MathJax 3 for pymdownx.arithmatex's generic output (\( \) and \[ \]), typeset as SVG:
// tex-svg.js needs no web fonts, so the pages render from the built files alone.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
