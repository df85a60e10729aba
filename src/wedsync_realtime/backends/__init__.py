"""How nodes share fan-out (and later history, presence and counters): interfaces and backends."""
