"""Incident pages: the causal picture of a root cause (`picture`), drawn as HTML (`page`) from a recording's
analysis or from the live graph (`live`). `tapio analyze --html`, `tapio explain --html` and the worker's
`/ui/` pages (`app.ui`) use them."""
