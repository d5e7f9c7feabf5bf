"""`python -m simsearch ...`: the same as the `simsearch` command."""
from .cli import main

raise SystemExit(main())
