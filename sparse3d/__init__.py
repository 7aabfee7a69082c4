"""sparse3d: deep learning on sparse 3D data of real scenes."""
__version__ = "0.1.0"
