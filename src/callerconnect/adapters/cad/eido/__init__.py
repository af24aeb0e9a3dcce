"""NENA EIDO (JSON) snapshots → native CAD events: :mod:`.snapshot` (the entry point,
``events_from_eido``), :mod:`.fields` (one native field from its elements) and
:mod:`.reader` (the document's JSON, lenient about shape, strict about values).
Names with a leading underscore are shared inside this package only."""
