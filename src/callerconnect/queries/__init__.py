"""The read side: agency-scoped queries returning plain rows.

The dashboard, the open-data publisher, ``calls show`` and the daily report all read
through this package; no page or publisher writes its own SQL. Every function takes
the agency it reads for and never returns another agency's rows.
"""
