"""Run the command line as `python -m orchestr8`."""

from ._console import main

main()
