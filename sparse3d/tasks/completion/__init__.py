"""Scene completion: a partial scan's TSDF in, the complete scene's surface and distances out.

    model.py       CompletionNet, CompletionConfig, CompletionOutput (coarse-to-fine sparse generation)
    loss.py        CompletionTarget (dense target, per-stride lookups) and completion_loss
    dataset.py     Sample (a sparse3d.crops crop, dense), sparse_input, collate, augment, CompletionDataset
                   (samples are made by data_tools' completion recipe: `sparse3d preprocess --recipe completion`)
    procedural.py  tiny numpy-only samples for tests and notebooks
    metrics.py     IoU, L1, chamfer distance
    predict.py     whole-scene prediction, evaluation, meshes + sparse grid, the results table
    config.py      CompletionTrainConfig (holds a CompletionConfig under ``model``), YAML loading
    checkpoint.py  load_model: a trained network back from a checkpoint (old layouts migrated)
    train.py       train(cfg): the task's model, batch and loss given to sparse3d.train.loop
    cli.py         sparse3d train completion | predict | eval (+ prepare-completion, an alias of preprocess)
    demo.py        sparse3d demo: the main job end to end
"""
