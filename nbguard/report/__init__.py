"""Reports: the JSON contract and every format drawn from it (terminal, HTML, Markdown,
JUnit XML, GitHub annotations), and nightly mode's comparison of two reports."""
