"""`python -m data_tools preprocess|generate ...` (same as `sparse3d preprocess|generate`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
