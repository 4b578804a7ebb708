"""botscore: the probability that a bot made a transaction, every answer kept in an audit log.

Subpackages are the architecture; imports run one way (docs/architecture.md, "Layout"):

    cli -> service -> http -> dataplane -> model, audit, ops -> call, errors, settings
"""

__version__ = "1.0.0"
