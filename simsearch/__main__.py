"""`python -m simsearch ...`: the same as the `simsearch` command."""
from simsearch.cli.main import main

raise SystemExit(main())
