"""LightningDataModules that keep their images in memory as uint8 tensors (base.py), and each dataset's
card (catalog.py, torch-free): its classes, channels and the limits of its options."""
