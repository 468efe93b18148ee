import sys

from turnout.emulate.cli import main

sys.exit(main())
