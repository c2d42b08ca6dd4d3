"""Frozen feature extractors and the on-disk feature store (`store`, `store_writer`)."""
