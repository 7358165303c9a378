"""``python -m churnkit``."""

from churnkit.cli import main

main()
