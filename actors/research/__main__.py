"""``python -m actors.research [--host H] [--port P] [--model M]``: serve the research agent."""

from ._command import main

main()
