"""Analysis of finished runs: metrics, the end-of-run summary, and the tables and counterfactuals the notebooks draw."""
