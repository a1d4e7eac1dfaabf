import sys

from llmbus.auth.main import main

sys.exit(main())
