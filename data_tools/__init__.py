"""Offline preprocessing of ScanNet-style scans: readers, fusion, voxelization, chunks."""
