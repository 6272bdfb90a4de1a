"""``python -m poster_rs``: the ``poster-rs`` command."""

import sys

from ._command import main

sys.exit(main())
