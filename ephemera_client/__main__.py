"""`python -m ephemera_client`: the `ephemera` command."""

from ephemera_client.cli import main

main()
