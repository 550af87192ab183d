"""Events -> typed data, never text: statistics, the report, the diff, the call tree."""
