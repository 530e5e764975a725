"""Benchmarks (`make bench`): each module bench/bench_*.py has run(args) -> markdown section."""
