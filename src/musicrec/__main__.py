"""``python -m musicrec``: the CLI in :mod:`musicrec.serving.cli`."""

from musicrec.serving.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
