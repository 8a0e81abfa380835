import sys

from ssimlib.apps.cli import main

sys.exit(main())
