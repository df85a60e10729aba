"""Who is subscribed where; publish, fan-out, presence and limits. Knows backend interfaces only."""
