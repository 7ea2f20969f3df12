"""`sruscale degrade`: not registered yet (this module adds the command when it works)."""
