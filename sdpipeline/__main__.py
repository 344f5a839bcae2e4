"""``python -m sdpipeline`` is the same as the ``sdpipeline`` command."""

import sys

from sdpipeline.cli import main

sys.exit(main())
