"""``python -m nnbench`` is the ``nnbench`` command."""

from nnbench.cli import main

main()
