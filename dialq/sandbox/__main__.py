"""``python -m dialq.sandbox``: the same command as ``dialq sandbox``."""

import typer

from dialq.sandbox.cli import sandbox_command

if __name__ == "__main__":
    typer.run(sandbox_command)
