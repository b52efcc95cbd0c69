"""LightningDataModules. Each keeps its images in memory as uint8 tensors (see base.py)."""
