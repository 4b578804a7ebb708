"""`python -m botscore`: the same as the `botscore` command."""

from botscore.cli import main

main()
