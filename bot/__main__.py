"""`python -m bot` is the `xingkong` command."""

from bot.cli import main

main()
