"""Benchmarks and load tests, run from the repository root as modules, for example
``.venv/bin/python -m loadtest.bench_proxy``; ``loadtest.common`` is what they share."""
