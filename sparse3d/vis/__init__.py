"""Open3D views of completion results: headless PNGs (render.py) and a window (viewer.py)."""
