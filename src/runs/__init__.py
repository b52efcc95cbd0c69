"""What training leaves on disk, and what reads it: torch-free.

rundir.py   a run directory: its files, metrics.json, overrides, config, checkpoints, status
resume.py   resume=<run dir>: the command line that continues a run
sweep.py    a multirun's summary.json / summary.csv (a Hydra callback)
report.py   tables and plots comparing finished runs, with mean ± std over seeds
"""
