"""Scene completion: a partial scan's TSDF in, the complete scene's surface and distances out.

    model.py       CompletionNet, CompletionConfig, CompletionOutput (coarse-to-fine sparse generation)
    dependent.py   GroupedOccupancy, group_index: dependent (autoregressive) group predictions of a level
    loss.py        CompletionTarget (dense target, per-stride lookups) and completion_loss
    dataset.py     Sample (a sparse3d.crops crop, dense), sparse_input, collate, augment, CompletionDataset
                   (samples are made by data_tools' completion recipe: `sparse3d preprocess --recipe completion`)
    procedural.py  tiny numpy-only samples for tests and notebooks
    metrics.py     IoU, L1, chamfer distance, precision / recall on observed and unobserved space, reach
    predict.py     whole-scene prediction (test-time views), evaluation of one sample, meshes + sparse grid, tables
    baselines.py   diffusion_fill: classical hole filling (no learning), the reference the network must beat
    oracles.py     observed_oracle, near_fill_oracle: ceilings that borrow the target (how much IoU is there)
    evaluate.py    `eval completion` over a dataset (skipped samples, decision-threshold tuning)
    rgbd_eval.py   `eval completion --rgbd`: input from a seeded subset of an RGB-D folder, target from all
    validation.py  validation during training (best.pt) on the data's val split
    config.py      CompletionTrainConfig (holds a CompletionConfig under ``model``), YAML loading
    checkpoint.py  load_model: a trained network back from a checkpoint (old layouts migrated)
    train.py       train(cfg): the task's model, batch and loss given to sparse3d.train.loop
    cli.py         sparse3d train completion | predict | eval (+ prepare-completion, an alias of preprocess)
    demo.py        sparse3d demo: the main job end to end
"""
