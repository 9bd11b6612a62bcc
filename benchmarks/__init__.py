"""segkit benchmarks: latency and throughput of every backend, FLOP efficiency, and a report.

Run with `pytest benchmarks/ --benchmark-only --benchmark-json=results.json` (the default
`pytest` run leaves them out), then `segbench report results.json -o benchmarks/results`.
`SEGKIT_BENCH_QUICK=1` runs the reduced matrix (unet, 256 px, batch 1 and 8).
"""
