import sys

from vlmsearch.cli import app

sys.exit(app())
