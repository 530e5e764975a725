"""Shared pieces every stage reads: labels, preprocessing, config, model contract."""

