"""The harness: a run's loop and its record (runlog, ledger), concurrency, and the methods it runs."""
