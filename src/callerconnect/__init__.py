"""callerconnect: texts people who call the police about less urgent matters."""

__version__ = "0.1.0"
