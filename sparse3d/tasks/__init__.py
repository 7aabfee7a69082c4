"""One folder per task: each holds its model, dataset, loss, metrics, predict/eval, config, train
entry, CLI and demo, and trains with the generic trainer in :mod:`sparse3d.train`.

    completion/   sparse scene completion from partial RGB-D scans (coarse-to-fine, SG-NN style)
"""
