"""One folder per task: each holds its model, dataset, loss, metrics, predict/eval, config, train
entry, CLI and demo, and trains with the generic trainer in :mod:`sparse3d.train`.

    completion/   sparse scene completion from partial RGB-D scans (coarse-to-fine, SG-NN style)
    segmentation/ ScanNet-20 semantic segmentation: sparse residual U-Net, sliding-window baseline, benchmark
    threedmv/     3DMV: 2D features back-projected into the voxels of the segmentation U-Net

The test-time views every task's ``--tta`` averages over live in :mod:`sparse3d.utils.test_time_views`.
"""
