"""The generic trainer every task and gen2d share (no task-specific code lives here).

    loop.py         run_steps(make_task, LoopSettings): the step loop (seeded, resumable, Ctrl-C guard,
                    mixed precision, DDP under torchrun); a task hands it a StepTask (model, optimizer,
                    learning rate, the batch of a step, the loss)
    epochs.py       fit(...): the epoch loop with validation, early stopping and a time budget (gen2d)
    checkpoint.py   save_checkpoint / load_checkpoint: atomic, weights_only, with a format version
    jsonl.py        metrics.jsonl: append, read, cut back on resume
    plots.py        the loss plot (save_loss_plot; plot_metrics for metrics.jsonl, plot_history for fit)
    distributed.py  torchrun set-up
"""
