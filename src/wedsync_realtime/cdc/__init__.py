"""Where database changes come from (logical replication); subscription filters; the RLS check."""
