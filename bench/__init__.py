"""The benchmark behind the README's figures, one module per suite (`python -m bench <suite>`):

accuracy.py  speed.py  startup.py  keras.py  scaling.py  gpu.py    and common.py, what they share.
"""
