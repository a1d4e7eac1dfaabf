import sys

from llmbus.mock_upstream.main import main

sys.exit(main())
