import sys

from llmbus.devstack.main import main

sys.exit(main())
