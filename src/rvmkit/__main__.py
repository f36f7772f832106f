import sys

from rvmkit.cli import main

sys.exit(main())
