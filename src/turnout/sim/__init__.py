"""`turnout sim`: a discrete-event fleet simulator running the gateway's own balancer."""
