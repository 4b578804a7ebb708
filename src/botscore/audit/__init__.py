"""The audit log: record lines appended to a local spool before each answer, shipped to S3 in the background.

record.py     the record line of a call (its schema is documented in the README)
segment.py    the active segment: appends and sealing (the event loop's)
spool.py      the spool directory: worker folders, locks, sealed segments, leftovers of dead workers
shipper.py    the background thread that uploads sealed segments and deletes them after
uploaders.py  where segments go: S3, or a local folder
log.py        AuditLog, the front object: the when-full policy and readiness
"""
