"""``python -m torchinit._cli``: the same as the ``torchinit`` command."""

import sys

from . import main

sys.exit(main())
