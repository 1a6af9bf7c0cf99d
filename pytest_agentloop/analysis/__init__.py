"""Pure functions over attempt records: statistics, diagnoses, cost."""
