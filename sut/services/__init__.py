"""Use cases shared by every transport (REST now, socket.io next): plain async functions."""
