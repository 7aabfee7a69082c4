"""Open3D views of results: headless PNGs and a window.

render.py / viewer.py: completion meshes (input / prediction / target) side by side; cli.py: the
`sparse3d view` group and `view completion`. labels.py: class labels of voxels or mesh vertices ->
colours of a palette given by the caller (vis knows no dataset), the legend; label_render.py: labelled
panels (prediction | ground truth) to a PNG with a legend, or a window; label_cli.py: `view segmentation`.
"""
