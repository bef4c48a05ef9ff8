"""Helpers for tests and demos (tiny random checkpoints); they need the test extra, and the runtime
never imports them."""
