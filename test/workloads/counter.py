#!/usr/bin/env python3
"""A tiny stateful workload: counts in memory and publishes the count to a file 10 times a
second. After a restore the count must continue from where it was, never from zero."""
import os
import sys
import time

path = sys.argv[1]
n = 0
while True:
    n += 1
    with open(path + ".tmp", "w") as f:
        f.write(f"{n}\n")
    os.replace(path + ".tmp", path)
    time.sleep(0.1)
