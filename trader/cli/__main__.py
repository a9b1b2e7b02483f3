"""``python -m trader.cli``: the same entry point as the ``trader`` script."""

from trader.cli import main

main()
