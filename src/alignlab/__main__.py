"""``python -m alignlab`` runs the command line."""

from alignlab.cli import main

main()
