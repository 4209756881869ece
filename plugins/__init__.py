"""fa-mem's built-in transformations, installed as the package ``fa_mem_plugins``.

Each module is a plugin registered through the ``fa_mem`` entry-point group declared in
fa-mem's pyproject.toml, exactly as a third-party plugin is.
"""
