"""Benchmarks of the JarlPM supervisor side by side with what people run today (``python -m bench``)."""
