# alloc_heavy.py - an allocation-heavy Python workload with deterministic
# output; run with PYTHONMALLOC=malloc so that every object goes through the
# allocator under test, and compared with the same run on glibc.
import collections
import gc
import hashlib
import json
import random
import re
import threading

rng = random.Random(12345)
out = hashlib.sha256()


def emit(label, value):
    text = f"{label}: {value}"
    out.update(text.encode())
    print(text)


# dicts and strings growing and shrinking
d = {}
for i in range(300000):
    d[f"key-{i}-{rng.random():.6f}"] = [i] * (i % 7)
    if i % 3 == 0:
        d.pop(next(iter(d)))
emit("dict", (len(d), sum(len(v) for v in d.values())))

# lists of tuples, sorting, slicing
rows = [(rng.randrange(10**9), str(rng.random()), i) for i in range(200000)]
rows.sort()
emit("sorted", (rows[0][0], rows[-1][0], len(rows[::7])))

# big integers and bytes
n = 1
for i in range(1, 3000):
    n *= i
emit("factorial bits", (n.bit_length(), n % 1000000007))
blob = bytearray()
for i in range(20000):
    blob += bytes([i & 255]) * (i % 50)
emit("bytes", hashlib.md5(blob).hexdigest())

# json round trip of a nested structure
tree = {"n%d" % i: {"list": list(range(i % 100)), "s": "x" * (i % 300)} for i in range(20000)}
text = json.dumps(tree, sort_keys=True)
emit("json", (len(text), json.loads(text) == tree))

# regular expressions over a large text
words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta42", "eps_7"]) for _ in range(200000))
emit("re", (len(re.findall(r"\b[a-z]+\d+\b", words)), len(re.sub(r"a", "AA", words))))

# reference cycles for the collector
class Node:
    def __init__(self, v):
        self.v = v
        self.other = None


for r in range(20):
    nodes = [Node(i) for i in range(20000)]
    for a, b in zip(nodes, nodes[1:]):
        a.other = b
    nodes[-1].other = nodes[0]
    del nodes
emit("gc", gc.collect() >= 0)

# threads allocating and passing objects through a queue
import queue

q = queue.Queue()
results = collections.Counter()


def producer(seed):
    r = random.Random(seed)
    for _ in range(20000):
        q.put([r.random() for _ in range(r.randrange(1, 20))])
    q.put(None)


def consumer():
    done = 0
    while done < 4:
        item = q.get()
        if item is None:
            done += 1
            continue
        results[len(item)] += 1


threads = [threading.Thread(target=producer, args=(s,)) for s in range(4)]
threads.append(threading.Thread(target=consumer))
for t in threads:
    t.start()
for t in threads:
    t.join()
emit("threads", sorted(results.items())[:5])
emit("counter", collections.Counter(w for w in words.split()).most_common(3))
print("digest", out.hexdigest())
