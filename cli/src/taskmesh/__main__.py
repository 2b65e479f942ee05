"""`python -m taskmesh` is the `taskmesh` command."""

from taskmesh.cli import main

main()
