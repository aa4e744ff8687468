"""What the Keptn roles share (the poller in sources/, the resolver in resolvers/, the sink in
sinks/): the API client, its models, the task files of the resource service, the event format."""
