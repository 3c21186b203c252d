"""The body of scripts/pitr-drill (see there): writer, shipper, drills, checks."""

import argparse
import glob
import gzip
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time

import bson
import pymongo


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Writer(threading.Thread):
    """Inserts and updates drill.docs at a steady rate; records every
    acknowledged write as (oplog ts, _id, value, ack wall time)."""

    def __init__(self, uri, rate, rng):
        super().__init__(daemon=True)
        self.client = pymongo.MongoClient(uri)
        self.rate = rate
        self.rng = rng
        self.writes = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.paused = threading.Event()

    def run(self):
        coll = self.client.drill.docs
        n = 0
        period = 1.0 / self.rate
        next_at = time.monotonic()
        with self.client.start_session() as s:
            while not self.stop.is_set():
                if self.paused.is_set():
                    time.sleep(0.01)
                    next_at = time.monotonic()
                    continue
                n += 1
                if n < 20 or self.rng.random() < 0.4:
                    _id, value = n, {"v": n, "pad": "x" * self.rng.randint(0, 200)}
                    coll.insert_one({"_id": _id, **value}, session=s)
                else:
                    _id = self.rng.randint(1, n - 1)
                    value = {"v": n, "pad": "u" * self.rng.randint(0, 50)}
                    r = coll.update_one({"_id": _id}, {"$set": value}, session=s)
                    if r.matched_count == 0:
                        continue
                ts = s.operation_time
                with self.lock:
                    self.writes.append((ts.time, ts.inc, _id, value["v"], time.time()))
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def snapshot(self):
        with self.lock:
            return list(self.writes)


class Shipper:
    def __init__(self, args, store, metrics):
        self.args, self.store, self.metrics = args, store, metrics
        self.proc = None
        self.cpu = 0.0
        self.killed_at = None

    def start(self):
        self.log = open(os.path.join(self.args.work, "pitr-run.log"), "a")
        self.proc = subprocess.Popen(
            [self.args.bin, "--store", self.store, "pitr", "run", "--mongo-uri", self.args.uri,
             "--slice", self.args.slice, "--metrics-file", self.metrics],
            stdout=self.log, stderr=self.log)

    def cpu_now(self):
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    def kill9(self):
        self.cpu += self.cpu_now()
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.cpu += self.cpu_now()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


def run(cmd, **kw):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    except subprocess.TimeoutExpired as e:
        raise SystemExit(f"{' '.join(cmd)} did not finish in 300 s:\n{e.stdout}{e.stderr}")
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def slices(store):
    """Every committed slice: (record, commit time = the record's mtime)."""
    out = []
    for path in glob.glob(os.path.join(store, "pitr", "*", "*.json")):
        if path.endswith("progress.json"):
            continue
        with open(path) as f:
            out.append((json.load(f), os.stat(path).st_mtime))
    out.sort(key=lambda r: [int(x) for x in r[0]["First"].split(":")])
    return out


def pos(s):
    a, b = s.split(":")
    return (int(a), int(b))


def covered_until(store):
    recs = slices(store)
    until = max((r["CompleteUntil"] for r, _ in recs), default=0)
    prog = glob.glob(os.path.join(store, "pitr", "*", "progress.json"))
    if prog and recs:
        with open(prog[0]) as f:
            p = json.load(f)
        if p["Last"] == recs[-1][0]["Last"]:
            until = max(until, p["CompleteUntil"])
    return until


def expected_at(writes, t):
    state = {}
    for (sec, inc, _id, v, _) in sorted(writes):
        if sec <= t:
            state[_id] = v
    return state


def take_base(args, store):
    """A base backup taken while the writer runs; its consistent point."""
    run([args.bin, "--store", store, "create", "--mongo-uri", args.uri, "--notes", "pitr drill base"])
    newest = json.loads(run([args.bin, "--store", store, "list", "--json"]))[0]
    return pos(newest["OplogEnd"])


def drill(args, k, writer, store, client, rng, stats):
    # A fresh base for each drill (as a schedule would take them): the
    # replay stays a few seconds long on a slow server.
    base_end = take_base(args, store)
    time.sleep(rng.uniform(3, 8))
    now = int(time.time())
    t = rng.randint(base_end[0] + 1, max(base_end[0] + 1, now - 1))
    deadline = time.time() + 60
    while covered_until(store) < t:
        if time.time() > deadline:
            raise SystemExit(f"drill {k}: the slices did not cover {t} within 60 s")
        time.sleep(0.2)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    db = f"drill_r{k}"
    started = time.time()
    log(f"drill {k}: restoring to {when}")
    out = run([args.bin, "--store", store, "restore", "--to-time", when, "--target",
               os.path.join(args.work, "target"), "--mongo-uri", args.uri,
               "--db-rename", f"drill={db}", "--no-safety-backup", "--yes"])
    stats["restore_s"].append(time.time() - started)
    expected = expected_at(writer.snapshot(), t)
    got = {d["_id"]: d["v"] for d in client[db].docs.find({}, {"v": 1})}
    exact = got == expected
    if not exact:
        missing = [i for i in expected if i not in got][:5]
        extra = [i for i in got if i not in expected][:5]
        wrong = [(i, got[i], expected[i]) for i in expected if i in got and got[i] != expected[i]][:5]
        log(f"drill {k} T={when}: NOT exact: missing {missing} extra {extra} wrong {wrong}\n{out}")
    else:
        log(f"drill {k} T={when}: exact ({len(expected)} documents)")
    client.drop_database(db)
    return exact


def check_chain(store, client, base_end):
    """Every oplog entry after the base is in exactly one slice, in order,
    each slice continuing the one before."""
    recs = slices(store)
    seen = []
    for i, (r, _) in enumerate(recs):
        if i > 0 and r["After"] != recs[i - 1][0]["Last"]:
            return f"slice {r['Object']} continues from {r['After']}, the one before ended at {recs[i - 1][0]['Last']}"
        with open(os.path.join(store, "pitr", r["ReplicaSet"], r["Object"]), "rb") as f:
            data = gzip.decompress(f.read())
        for e in bson.decode_all(data):
            seen.append((e["ts"].time, e["ts"].inc))
    if len(seen) != len(set(seen)):
        return f"{len(seen) - len(set(seen))} duplicate entries"
    if not seen:
        return "no entries shipped"
    last = seen[-1]
    oplog = [(e["ts"].time, e["ts"].inc) for e in client.local["oplog.rs"].find(
        {"ts": {"$gt": bson.Timestamp(base_end[0], base_end[1]),
                "$lte": bson.Timestamp(last[0], last[1])}}).sort("$natural", 1)]
    if oplog != seen:
        missing = sorted(set(oplog) - set(seen))[:5]
        extra = sorted(set(seen) - set(oplog))[:5]
        bounds = [(r["After"], r["First"], r["Last"]) for r, _ in recs]
        return (f"the slices hold {len(seen)} entries, the oplog {len(oplog)} in that range: "
                f"missing {missing}, not in the oplog {extra}; slices {bounds}")
    return None


def slice_seconds(s):
    """`5s`, `2min`, `1h` as seconds."""
    for unit, n in (("min", 60), ("s", 1), ("h", 3600)):
        if s.endswith(unit) and s[: -len(unit)].isdigit():
            return int(s[: -len(unit)]) * n
    return int(s)


def main():
    ap = argparse.ArgumentParser()
    for a in ("drills", "seed", "rate"):
        ap.add_argument("--" + a, type=int, required=True)
    for a in ("slice", "bin", "uri", "work"):
        ap.add_argument("--" + a, required=True)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    store = os.path.join(args.work, "store")
    metrics = os.path.join(args.work, "pitr.prom")
    client = pymongo.MongoClient(args.uri)
    for _ in range(100):
        try:
            client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            time.sleep(0.1)
    client.drill.docs.insert_one({"_id": 0, "v": 0})
    base_end = take_base(args, store)
    writer = Writer(args.uri, args.rate, rng)
    writer.writes.append((0, 0, 0, 0, 0.0))
    shipper = Shipper(args, store, metrics)
    shipper.start()
    try:
        drills(args, rng, store, metrics, client, writer, shipper, base_end)
    finally:
        if shipper.proc.poll() is None:
            shipper.proc.kill()


def drills(args, rng, store, metrics, client, writer, shipper, base_end):
    writer.start()
    started = time.time()
    stats = {"restore_s": []}
    exact = 0
    for k in range(1, args.drills + 1):
        if k == args.drills // 2 + 1:
            # Mid-slice: a few seconds after the last commit.
            time.sleep(rng.uniform(1, 3))
            shipper.kill9()
            log(f"killed the shipper (SIGKILL) before drill {k}; restarting it")
            shipper.start()
        exact += drill(args, k, writer, store, client, rng, stats)
    writer.stop.set()
    writer.join()
    time.sleep(1)
    last_write = max(w[0] for w in writer.snapshot())
    deadline = time.time() + 120
    while covered_until(store) < last_write and time.time() < deadline:
        time.sleep(0.2)
    elapsed = time.time() - started
    shipper.stop()
    chain_problem = check_chain(store, client, base_end)
    listing = json.loads(run([args.bin, "--store", store, "pitr", "list", "--json"]))
    gaps = [g for rs in listing["ReplicaSets"] for g in rs["Gaps"]]
    # RPO: acknowledgement -> commit of the slice holding the write.
    recs = slices(store)
    rpo = []
    # The writes made while no shipper could commit them: the killed one's
    # uncommitted ones and those before the restarted one's first commit.
    held = []
    first_after = min((c for _, c in recs if shipper.killed_at and c > shipper.killed_at), default=None)
    for (sec, inc, _id, v, acked) in writer.snapshot()[1:]:
        for r, committed in recs:
            if pos(r["First"]) <= (sec, inc) <= pos(r["Last"]):
                rpo.append(committed - acked)
                if first_after and acked <= first_after <= committed:
                    held.append(committed - acked)
                break
    size = sum(r["Size"] for r, _ in recs)
    writes = len(writer.snapshot()) - 1
    print(f"{args.drills} drills, {exact} exact")
    if rpo:
        goal = slice_seconds(args.slice) + 5
        met = "met" if max(rpo) <= goal else "missed"
        print(f"RPO: median {statistics.median(rpo):.1f} s, max {max(rpo):.1f} s ({len(rpo)} writes, slice {args.slice}; goal max <= {goal} s: {met})")
        if held:
            rest = sorted(rpo)
            for h in held:
                rest.remove(h)
            print(f"  of which {len(held)} writes waited for the shipper killed with SIGKILL to be restarted (max {max(held):.1f} s); "
                  f"without them max {max(rest) if rest else 0:.1f} s")
    print(f"kill -9 mid-slice and restart: {'no gap, no duplicate' if not chain_problem and not gaps else 'FAILED: ' + str(chain_problem or gaps)}")
    print(f"shipper: {len(recs)} slices, {size} bytes stored for {writes} writes in {elapsed:.0f} s "
          f"({size * 3600 / max(elapsed, 1) / 1e6:.1f} MB/hour at {writes / max(elapsed, 1):.0f} writes/s), "
          f"CPU {shipper.cpu:.1f} s ({100 * shipper.cpu / max(elapsed, 1):.1f}%); "
          f"restore median {statistics.median(stats['restore_s']):.1f} s")
    ok = exact == args.drills and not chain_problem and not gaps and writes > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
