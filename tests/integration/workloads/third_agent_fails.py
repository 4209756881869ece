"""Agent index 2 raises on its first step, so a population of 2 agents runs cleanly and
a population of 3 or more fails (used to make only a scaling run fail)."""


class Agent:
    def __init__(self, index: int) -> None:
        self.index = index

    def step(self, observation: int) -> int:
        if self.index == 2:
            raise ValueError("agent two cannot step")
        return 0


def create_agents(n: int, seed: int) -> list[Agent]:
    return [Agent(index) for index in range(n)]
