"""`python -m export` runs the `segexport` command line."""

from export.cli import main

main()
