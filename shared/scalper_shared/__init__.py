"""Scalper shared package: message schema, bus, storage, service runtime and the pure domain core."""
