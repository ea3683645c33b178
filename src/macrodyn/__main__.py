"""``python -m macrodyn``: the ``macrodyn`` command."""
from macrodyn.cli import entry

if __name__ == "__main__":
    entry()
