import sys

from smartpbx_ari.cli import main

sys.exit(main())
