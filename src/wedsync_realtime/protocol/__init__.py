"""What is on the wire: Phoenix frames of both serializer versions, WebSocket framing, and the
per-connection session.

Of our own code it imports only the error codes (`errors.py`); it does no I/O and reads no clock.
"""
