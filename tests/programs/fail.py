"""Chain-step test program: reports eight lines on stderr and exits with status 3."""

import sys

for i in range(1, 9):
    print(f"problem line {i}", file=sys.stderr)
sys.exit(3)
