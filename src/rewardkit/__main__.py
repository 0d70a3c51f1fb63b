"""`python -m rewardkit` runs the `rewardkit` command."""

import sys

from rewardkit.cli import main

sys.exit(main())
