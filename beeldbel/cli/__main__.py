import sys

from beeldbel.cli.main import main

sys.exit(main())
