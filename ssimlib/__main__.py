import sys

from ssimlib.cli import main

sys.exit(main())
