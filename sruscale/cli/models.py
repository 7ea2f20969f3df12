"""`sruscale models`: not registered yet (this module adds the command when it works)."""
