"""``python -m sparse3d.gen2d <model> [options]`` = ``sparse3d train gen2d <model> [options]``."""
import sys

from .cli import main

sys.exit(main())
