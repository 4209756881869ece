"""Sample agent modules that follow the fa-mem module protocol.

Each module exposes ``create_agents(n, seed)`` and ``observe(agent, step, rng)``;
every agent exposes ``step(observation) -> action``. See each module's docstring
for the memory pattern it demonstrates.
"""
