"""The local stack: Ephemera's Chalice app served as API Gateway and Lambda would serve it.

REST, WebSocket, the management API, the schedule and the web client on one port, with the
handlers in worker processes. Never deployed; `make run` starts it (`python -m local_stack`).
"""
