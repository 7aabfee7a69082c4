"""Shared utilities of sparse3d: atomic I/O, mesh extraction + PLY, argument checks, argparse types."""
