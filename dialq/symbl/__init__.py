"""The Symbl API client: auth, errors, retry policy, request bodies and endpoints."""
