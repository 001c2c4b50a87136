"""Feature service: md.bars into feature vectors on features.vectors and the features table."""
