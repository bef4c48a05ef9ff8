"""Benchmarks shipped with the package (`python -m anno_mlx bench`); the runtime never imports them."""
