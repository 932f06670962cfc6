import sys

from agekeras.cli import main

sys.exit(main())
