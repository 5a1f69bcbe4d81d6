"""`python -m bot` is the `xingkong` command."""

from bot.cli import main

if __name__ == "__main__":  # not when a spawned training process imports it
    main()
