"""`python -m dialq.cli ...` runs the `dialq` command."""

from dialq.cli.entry import main

main()
