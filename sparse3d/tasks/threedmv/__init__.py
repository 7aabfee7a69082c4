"""3DMV (Dai & Niessner 2018): 2D image features back-projected into the sparse voxel grid and fused with
geometry for per-voxel ScanNet-20 labels. See docs/threedmv.md."""
