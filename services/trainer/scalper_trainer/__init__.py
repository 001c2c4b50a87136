"""Trainer worker: RQ jobs on queue training running MaskablePPO."""
