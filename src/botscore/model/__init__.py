"""The model: a validated artifact, the scorer that serves it, and its reload without downtime."""
