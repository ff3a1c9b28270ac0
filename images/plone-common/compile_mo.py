"""Compiles every gettext catalog (LC_MESSAGES/*.po) under the given directories to its .mo,
as Zope would at start up with zope_i18n_compile_mo_files (which needs write access to the code)."""

import os
import sys

from zope.i18n.compile import compile_mo_file

count = 0
for top in sys.argv[1:]:
    for dirpath, _dirs, files in os.walk(top):
        if os.path.basename(dirpath) != "LC_MESSAGES":
            continue
        for name in files:
            if name.endswith(".po"):
                compile_mo_file(name[:-3], dirpath)
                count += 1
print(f"compile_mo: {count} catalogs", file=sys.stderr)
