"""The audit log: record lines appended to a local spool before each answer, shipped to S3 in the background.

record.py     the record line of a call (its schema is documented in the README)
log.py        AuditLog, the front object: the when-full policy; what /readyz, /healthz and /metrics read
segment.py    the active segment: appends (the event loop's), size and age bounds
sealer.py     the seal thread: seals detached segments, opens the next one ahead
sync.py       BOTSCORE_AUDIT_SYNC: fsyncs off the loop, group commit, answers released by folder ownership
spool.py      the spool directory: worker folders, the layout, sealed segments
lease.py      ownership: the lease and the fencing token in the lock file
adoption.py   dead workers' folders taken over, and the watch on live ones' heartbeats
readiness.py  /readyz: room on the spool's disk, slow storage
health.py     /healthz: a spool fault judged this task's own or everyone's
upkeep.py     the audit log's threads: heartbeat and housekeeping
shipper.py    the background thread that uploads sealed segments and deletes them after
uploaders.py  where segments go: S3, or a local folder
"""
