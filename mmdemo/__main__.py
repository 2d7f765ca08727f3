"""``python -m mmdemo``: the command-line interface (see ``mmdemo.cli``)."""

from mmdemo.cli import main

if __name__ == "__main__":
    main()
