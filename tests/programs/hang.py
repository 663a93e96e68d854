"""Chain-step test program: starts a child that sleeps, writes both process ids to PIDFILE, then hangs.

Usage: python hang.py PIDFILE
"""

import os
import subprocess
import sys
import time

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
print("working...", file=sys.stderr, flush=True)
time.sleep(120)
