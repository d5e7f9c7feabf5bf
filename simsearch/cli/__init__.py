"""Layer 9, the command line: `simsearch` and its subcommands, the run file and its runner."""
