"""``python -m bench``: run the benchmark scenarios (see ``bench/README.md``)."""

from bench.run import main

raise SystemExit(main())
