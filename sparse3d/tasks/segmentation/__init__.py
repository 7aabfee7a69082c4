"""3D semantic segmentation on the ScanNet-20 benchmark classes: a sparse residual U-Net (fully
convolutional on whole scenes), the ScanNet paper's sliding-window dense baseline, and the benchmark
protocol (per-vertex `<scene_id>.txt` submissions, scored as the benchmark does). docs/segmentation.md.
"""
