"""`python -m saescope …` (and `torchrun … -m saescope …`): the same as the `saescope` command."""

import sys

from .cli import main

sys.exit(main())
