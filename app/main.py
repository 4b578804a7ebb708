"""`uvicorn app.main:app` from the repository root (the brief's command): the real app, built from BOTSCORE_*.

Plain uvicorn serves it with its own protocol, so the connection bounds (431, 408, the unread-answer
bound, shedding) are not applied: the app says so in a WARNING at start-up. `botscore serve`
applies them.
"""

from botscore.service import build_from_environment

app = build_from_environment().app
