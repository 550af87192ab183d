"""The recording side: standard library only, imported by ``import liteprof``.

``api`` is the public face, ``session`` the log file and failure policy of one process,
``backend`` the choice between the C core (``_core``) and its pure-Python twin
(``_pyrecorder``).
"""
