"""WedSync Realtime: a real-time sync server speaking the Supabase Realtime wire protocol."""

__version__ = "0.1.0"
