"""``python -m ldmdata.cli``: the same as the ``ldmdata`` command."""

from ldmdata.cli.app import main

main()
