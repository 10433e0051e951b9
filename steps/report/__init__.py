"""The report: reading runs, the table, the figures, the files (compare's and the benchmark's)."""
