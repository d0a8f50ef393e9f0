"""Calls: states, the request, the pure policy, and the use cases enqueue, dial, watch, cancel."""
