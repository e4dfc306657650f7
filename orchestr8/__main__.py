"""Run the command line as `python -m orchestr8`."""

from ._cli import main

main()
