import sys

from fer_edge.train.cli import main

sys.exit(main())
