"""``python -m sdpipeline`` is the same as the ``sdpipeline`` command."""

from sdpipeline.cli import entry

entry()
