"""The audit log: record lines appended to a local spool before each answer, shipped to S3 in the background.

record.py     the record line of a call (its schema is documented in the README)
segment.py    the active segment: appends (the event loop's) and sealing (a thread's)
sync.py       BOTSCORE_AUDIT_SYNC: fsyncs off the loop, group commit under `always`
spool.py      the spool directory: worker folders, leases and fencing, sealed segments, adoption
shipper.py    the background thread that uploads sealed segments and deletes them after
uploaders.py  where segments go: S3, or a local folder
log.py        AuditLog, the front object: the when-full policy and readiness
"""
