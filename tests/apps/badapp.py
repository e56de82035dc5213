"""An app that fails at import, like a deploy with a missing dependency."""

import not_a_real_module_jarlpm  # noqa: F401

app = None
