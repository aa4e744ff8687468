"""Sources turn input into CloudEvents and offer them to the dispatcher: HTTP, NATS, the Keptn poller."""
