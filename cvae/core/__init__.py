"""The bottom layer: facts and maths every other layer shares.

The datasets and classes (`medmnist_info`, `labels`), where files live (`paths`), the configuration (`config`), the
model and its loss (`model`, `loss`), number formatting, spreads over seeds, and the original report's numbers.
Imports nothing from the layers above (the contract in `.importlinter`).
"""
