#!/usr/bin/env python3
"""pystate: a Python program with intricate in-memory state that it can verify.

    pystate.py STATUS_DIR [--interval-ms MS] [--seed S]

Every MS milliseconds (default 10) the main thread takes one step n, which touches:
  table    dict of the last 2000 steps by key "k<n mod 2000>" -> (n, sha256 prefix of n)
  ring     a doubly linked ring of objects (reference cycles) holding the last 500 steps
  primes   a generator suspended mid-iteration; its next prime is drawn every 10 steps
  fib      a generator of Fibonacci numbers mod 2**61-1, checked against a shadow pair (a, b)
  rng      random.Random(seed), drawn every step alongside an identical twin
  totals   the sum of all n (must equal n(n+1)/2) and a closure counter
A second thread counts on its own (under a lock) into a deque of its last 1000 values.

On SIGUSR1 it verifies everything: every table entry's key, step and digest; the ring's links
both ways and its values; the generator's next prime is the next prime (by trial division);
the Fibonacci generator and its shadow agree; rng and twin are in the same state; the totals;
the thread is alive, its deque consecutive, and it advanced since the last verification and
advances again now. Status protocol: see wlstatus.py.
"""
import collections
import hashlib
import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wlstatus import Failure, Status  # noqa: E402

TABLE = 2000
RING = 500
FIB_MOD = 2**61 - 1


def digest(n):
    return hashlib.sha256(str(n).encode()).hexdigest()[:16]


def is_prime(k):
    if k < 2:
        return False
    i = 2
    while i * i <= k:
        if k % i == 0:
            return False
        i += 1
    return True


def primes():
    found = []
    k = 2
    while True:
        if all(k % p for p in found if p * p <= k):
            found.append(k)
            yield k
        k += 1


def fibonacci():
    a, b = 0, 1
    while True:
        yield a
        a, b = b, (a + b) % FIB_MOD


def make_counter():
    count = 0

    def bump():
        nonlocal count
        count += 1
        return count

    return bump


class Node:
    __slots__ = ("value", "prev", "next")

    def __init__(self, value):
        self.value = value
        self.prev = self
        self.next = self


class Ring:
    def __init__(self):
        self.head = None  # the oldest node
        self.size = 0

    def push(self, value):
        node = Node(value)
        if self.head is None:
            self.head = node
        else:
            tail = self.head.prev
            node.prev, node.next = tail, self.head
            tail.next = node
            self.head.prev = node
        self.size += 1
        if self.size > RING:
            old = self.head
            self.head = old.next
            old.prev.next = old.next
            old.next.prev = old.prev
            old.prev = old.next = None
            self.size -= 1

    def check(self, last):
        values = []
        node = self.head
        for _ in range(self.size):
            if node.next.prev is not node or node.prev.next is not node:
                raise Failure(f"ring links broken at value {node.value}")
            values.append(node.value)
            node = node.next
        if node is not self.head:
            raise Failure("ring does not close after size nodes")
        want = list(range(last - self.size + 1, last + 1))
        if values != want:
            raise Failure(f"ring holds {values[:3]}..{values[-3:]}, expected {want[:3]}..{want[-3:]}")


class Counter(threading.Thread):
    def __init__(self):
        super().__init__(name="pystate-counter", daemon=True)
        self.lock = threading.Lock()
        self.count = 0
        self.recent = collections.deque(maxlen=1000)
        self.last_verified = 0

    def run(self):
        while True:
            with self.lock:
                self.count += 1
                self.recent.append(self.count)
            time.sleep(0.005)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: pystate.py STATUS_DIR [--interval-ms MS] [--seed S]")
    status = Status(sys.argv[1]).install()
    interval = 0.01
    seed = 42
    if "--interval-ms" in sys.argv:
        interval = int(sys.argv[sys.argv.index("--interval-ms") + 1]) / 1000
    if "--seed" in sys.argv:
        seed = int(sys.argv[sys.argv.index("--seed") + 1])

    table = {}
    ring = Ring()
    prime_gen = primes()
    last_prime = 0
    primes_drawn = 0
    fib_gen = fibonacci()
    fa, fb = 0, 1  # shadow: the next value fib_gen yields is fa
    rng, twin = random.Random(seed), random.Random(seed)
    bump = make_counter()
    total = 0
    n = 0
    counter = Counter()
    counter.start()
    last_verified_n = 0

    def step():
        nonlocal n, total, last_prime, primes_drawn, fa, fb
        n += 1
        table[f"k{n % TABLE}"] = (n, digest(n))
        ring.push(n)
        total += n
        if bump() != n:
            raise Failure(f"closure counter disagrees with step {n}")
        got = next(fib_gen)
        if got != fa:
            raise Failure(f"fibonacci generator gave {got}, shadow expected {fa} at step {n}")
        fa, fb = fb, (fa + fb) % FIB_MOD
        if rng.random() != twin.random():
            raise Failure(f"rng and its twin diverged at step {n}")
        if n % 10 == 0:
            p = next(prime_gen)
            if p <= last_prime:
                raise Failure(f"prime generator went back: {p} after {last_prime}")
            last_prime = p
            primes_drawn += 1

    def check():
        nonlocal last_prime, primes_drawn, last_verified_n, fa, fb
        if n < last_verified_n:
            raise Failure(f"step {n} is behind {last_verified_n} of the previous verification")
        if len(table) != min(n, TABLE):
            raise Failure(f"table has {len(table)} entries, expected {min(n, TABLE)}")
        for key, (i, d) in table.items():
            if key != f"k{i % TABLE}" or not n - TABLE < i <= n or d != digest(i):
                raise Failure(f"table entry {key} = ({i}, {d}) is wrong at step {n}")
        ring.check(n)
        if total != n * (n + 1) // 2:
            raise Failure(f"running total {total} != {n * (n + 1) // 2}")
        if rng.getstate() != twin.getstate():
            raise Failure("rng and its twin are in different states")
        # The suspended prime generator resumes with the next prime.
        p = next(prime_gen)
        want = last_prime + 1
        while not is_prime(want):
            want += 1
        if p != want:
            raise Failure(f"prime generator resumed with {p}, the next prime after {last_prime} is {want}")
        last_prime, primes_drawn = p, primes_drawn + 1
        got = next(fib_gen)
        if got != fa:
            raise Failure(f"fibonacci generator resumed with {got}, shadow expected {fa}")
        fa, fb = fb, (fa + fb) % FIB_MOD
        if not counter.is_alive():
            raise Failure("the counter thread is dead")
        with counter.lock:
            c = counter.count
            recent = list(counter.recent)
        if recent != list(range(c - len(recent) + 1, c + 1)):
            raise Failure(f"counter thread's deque is not consecutive up to {c}")
        if c <= counter.last_verified:
            raise Failure(f"counter thread at {c}, not past {counter.last_verified} of the previous verification")
        until = time.monotonic() + 2
        while counter.count == c:
            if time.monotonic() > until:
                raise Failure(f"counter thread is stuck at {c}")
            time.sleep(0.001)
        counter.last_verified = c
        last_verified_n = n
        return f"steps={n} table={len(table)} ring={ring.size} primes={primes_drawn} thread_count={c} progress={n}"

    error = None
    for _ in range(20):
        step()
    status.ready(f"seed={seed} threads={threading.active_count()}")
    last_progress = 0.0
    while True:
        if status.take():
            if error:
                status.fail(error)
            else:
                status.verdict_from(check)
        if error is None:
            try:
                step()
            except Failure as e:
                error = str(e)
        now = time.monotonic()
        if now - last_progress >= 1:
            status.progress(n)
            last_progress = now
        time.sleep(interval)


if __name__ == "__main__":
    main()
