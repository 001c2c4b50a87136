"""Ingestion service: bars from Polygon, files, the synthetic market or a replay into the bars table and md.bars."""
