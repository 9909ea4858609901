"""The local stack: the compose topology from native processes under supervisord, without Docker."""
