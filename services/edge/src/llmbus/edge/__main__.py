import sys

from llmbus.edge.main import main

sys.exit(main())
