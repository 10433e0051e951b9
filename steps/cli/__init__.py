"""Declaring the command line: the option table (Click options, MLproject parameters)."""
