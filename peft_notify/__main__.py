"""``python -m peft_notify`` runs the ``peft-notify`` command line."""

import sys

from peft_notify.cli import main

sys.exit(main())
