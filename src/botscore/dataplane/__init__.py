"""The request sequence without HTTP: validate a body, score it, keep its record, decide the answer."""
