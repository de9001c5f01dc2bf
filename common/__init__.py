"""What every service shares: config loading and its one-line errors, JSON logs, constants.

Services import this package and never each other, so each image carries only its own code.
"""
