"""The brief's entry point, kept as a shim: the service is the `botscore` package (src/botscore)."""
