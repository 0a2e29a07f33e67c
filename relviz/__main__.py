import sys

from relviz.cli import main

sys.exit(main())
