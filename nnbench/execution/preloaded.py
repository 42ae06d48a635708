"""Imported last by the workers' fork server, once everything in its preload list is imported.

Importing this module freezes the garbage collector's view of what the server holds
(:func:`gc.freeze`). A forked worker then never walks those objects in its own collections, which
would write to their pages and copy them (so the workers share the server's memory instead), and
the server leaves them out of its collections at exit too, so it ends soon after the run does (an
output pipe stays open until it has).
"""

import gc

gc.freeze()
