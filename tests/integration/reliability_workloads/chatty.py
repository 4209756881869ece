"""An agent whose first step prints FA_MEM_TEST_PRINT_MB megabytes (default 100) to
stdout, and a little to stderr, then writes the byte count to FA_MEM_TEST_PRINTED."""

import os
import sys

LINE = "x" * 1023 + "\n"
CHUNK = LINE * 1024  # 1 MiB


class Chatty:
    printed = False

    def step(self, observation: int) -> int:
        if not Chatty.printed:
            Chatty.printed = True
            megabytes = int(os.environ.get("FA_MEM_TEST_PRINT_MB", "100"))
            for _ in range(megabytes):
                sys.stdout.write(CHUNK)
            sys.stdout.flush()
            print("the end of a long output", file=sys.stderr, flush=True)
            printed = os.environ.get("FA_MEM_TEST_PRINTED")
            if printed:
                with open(printed, "w", encoding="utf-8") as out:
                    out.write(str(megabytes * len(CHUNK)))
        return 0


def create_agents(n: int, seed: int) -> list[Chatty]:
    return [Chatty() for _ in range(n)]
