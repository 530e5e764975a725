import sys

from fer_edge.train.train import main

sys.exit(main())
