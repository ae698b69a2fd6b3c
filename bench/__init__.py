"""Benchmarks for the background remover: ``make bench`` runs :mod:`bench.run`.

:mod:`bench.run` times the network, end-to-end photos, CLI throughput and cold start and
writes ``bench/RESULTS.md``; :mod:`bench.memory` measures resident memory (a 500-photo CLI
batch and one 50 MP photo) from outside the measured process, via ``/proc``, so the
core needs no hooks. Nothing here is imported by the app, the CLI or the tests.
"""
