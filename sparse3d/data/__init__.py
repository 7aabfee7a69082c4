"""Datasets, collate functions and transforms for training."""
