"""Fakes of third parties we cannot reach in tests, as real servers on 127.0.0.1 speaking their wire format."""
