import sys

from llmbus.router.main import main

sys.exit(main())
