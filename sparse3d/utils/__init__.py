"""Shared utilities of sparse3d: atomic I/O, mesh extraction + PLY, argument checks, argparse types, the test-time
views of the tasks' ``--tta`` (``test_time_views``)."""
