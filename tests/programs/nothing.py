"""Chain-step test program: exits 0 without writing its output."""

import sys

print("all done (but nothing written)", file=sys.stderr)
sys.exit(0)
