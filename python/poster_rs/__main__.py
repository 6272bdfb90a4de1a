"""``python -m poster_rs``: the ``poster-rs`` command."""

import sys

from .cli import main

sys.exit(main())
