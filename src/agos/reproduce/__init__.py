"""`agos reproduce`: the paper's evaluation end to end — capture, prove, count, simulate, report."""
