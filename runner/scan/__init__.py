"""``midprobe scan``: the standalone scanner; probes chained per host, results streamed as hosts finish."""
