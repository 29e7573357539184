"""Jobs shared by the CLI, the service and the scheduler: init, import, stats and more."""
