"""Tools the deep-search agent uses: lookups over a PhantomWiki universe (relations) and BM25 search (search)."""
