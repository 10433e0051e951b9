"""gdlab's entry points: thin Click commands around ``core`` that log to MLflow."""
