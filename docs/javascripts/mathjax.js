// MathJax settings for the pages that pymdownx.arithmatex (generic mode) writes:
// math is wrapped in elements of class "arithmatex" with \( \) or \[ \] delimiters,
// and only those elements are typeset, so dollar signs elsewhere stay text.
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
