"""Execution and risk service: policy decisions through the risk engine to the paper or live broker."""
