import sys

from llmbus.cli.main import main

sys.exit(main())
