"""Config schema and loader, loggers, statistics and small helpers."""
