"""python -m qwen3align → the command line (qwen3align.cli)."""
import sys

from .cli import main

sys.exit(main())
