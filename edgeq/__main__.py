"""`python -m edgeq`: the same command as the `edgeq` console script."""

from edgeq.entry import main

main()
