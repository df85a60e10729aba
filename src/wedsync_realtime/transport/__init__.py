"""Socket adapters: bytes in, bytes out, close codes. The engine never sees a socket."""
