import sys

from train.train import main

sys.exit(main())
