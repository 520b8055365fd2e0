"""What outlives one compile: the runs store (SQLite) every compile is recorded in."""
