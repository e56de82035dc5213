"""Test fixture: a revision file that raises while it is loaded (not inside a migration step).

Loading the scripts (to find the heads) is not wrapped like a migration step, so this
ends the phase process through its last-resort guard: a crash, as a bug would.

Revision ID: x_crashes
"""

revision = "x_crashes"
down_revision = "__DOWN__"
branch_labels = None
depends_on = None

raise LookupError("x_crashes: this revision cannot even be loaded")
