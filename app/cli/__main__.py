"""`python -m app.cli`: the `tapio` command without its console script (the tests run it so).

Fed by: the interpreter's -m. Feeds: `app.cli.main`.
"""

from app.cli import main

main()
