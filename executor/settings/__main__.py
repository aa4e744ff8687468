"""`python -m executor.settings`: the README's settings table, from the declarations."""

import sys

from executor.settings import markdown_table

sys.stdout.write(markdown_table())
