"""What is on the wire: Phoenix frames of both serializer versions and the per-connection session.

Imports nothing else of ours, does no I/O and reads no clock.
"""
