"""The benchmark suite (`python -m benchmarks`) and the books' reference scripts."""
