import sys

from llmbus.worker.main import main

sys.exit(main())
