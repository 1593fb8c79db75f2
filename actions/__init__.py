"""What follows an ERP action once its transaction has committed, shared by the service and the
CLI: the immediate push to OZmap and the Prefect event (`after_commit`, `events`)."""
