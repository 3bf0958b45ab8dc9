"""Events: one big append-only table, plain and partitioned by month (lesson 11)."""
