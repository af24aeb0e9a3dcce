"""How the system is started: the command line, ``serve``, ``worker`` and the demo.

They build the application through ``bootstrap`` and call services; nothing below this
package imports it.
"""
