"""``python -m watcher.cli``: the same as the ``watcher`` command."""

from watcher.cli import main

main()
