"""``python -m musicrec``: the CLI in :mod:`musicrec.serving.cli`."""

from musicrec.serving.cli import run

if __name__ == "__main__":
    run()
