"""Locust users, the socket.io client, the load shape, the delivery checker and the load generator metrics."""
