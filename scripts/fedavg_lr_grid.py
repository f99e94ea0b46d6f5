#!/usr/bin/env python3
"""The learning-rate search behind the README's FedAvg table (experiments/fedavg_mnist_table.toml).

scripts/fedavg_lr_grid.py BIN OUT_DIR [ROW ...]

Each candidate learning rate runs the row's exact setting (same seed; only train.lr and
federation.rounds set) for the row's horizon H. The winner is the rate with the fewest rounds to
the target if any reached it within H, else the highest global test accuracy by round H (best so
far); a run stopped by a non-finite training loss counts as diverged and never wins. The search
starts from the rates listed for the row and, while the winner is at the edge of those tried,
tries the next rate of the grid beyond it. One JSON line per row goes to OUT_DIR/summary.jsonl.
A short horizon favours rates that start fast; the paper chose over whole runs.
"""
import json, os, subprocess, sys, time

GRID = [0.01, 0.0215, 0.0464, 0.1, 0.215, 0.464, 1.0]  # 10^(1/3) apart, as the paper's grids
ROWS = [  # row, horizon H, first rates
    ("2nn_iid_e1_b10", 100, [0.0464, 0.1, 0.215]),
    ("cnn_iid_e1_b10", 10, [0.0464, 0.1, 0.215]),
    ("cnn_noniid_e1_b10", 10, [0.0464, 0.1, 0.215]),
    ("cnn_noniid_fedsgd", 20, [0.0464, 0.1, 0.215]),
    ("cnn_iid_e5_b10", 5, [0.0464, 0.1, 0.215]),
    ("cnn_noniid_e5_b10", 5, [0.0464, 0.1, 0.215]),
    ("2nn_noniid_e1_b10", 60, [0.0464, 0.1, 0.215]),
    ("cnn_iid_fedsgd", 15, [0.0464, 0.1, 0.215]),
    ("cnn_noniid_e20_b10", 2, [0.0464, 0.1, 0.215]),
    ("cnn_iid_e20_b10", 1, [0.0464, 0.1, 0.215]),
]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "experiments", "fedavg_mnist_table.toml")


def score(rounds_file, horizon):
    rows = [json.loads(l) for l in open(rounds_file) if l.strip()]
    rows = [r for r in rows if 1 <= r["round"] <= horizon]
    best, at = 0.0, 0
    for r in rows:
        if r["global_accuracy"] is not None and r["global_accuracy"] > best:
            best, at = r["global_accuracy"], r["round"]
    reached = next((r["global_rounds_to_target"] for r in rows if r.get("global_rounds_to_target") is not None), None)
    return {"rounds": len(rows), "best": best, "best_round": at, "rounds_to_target": reached}


def run(binary, out, row, lr, horizon):
    where = os.path.join(out, row, f"lr_{lr}")
    rounds_file = os.path.join(where, "fedavg_mnist_table", row, "rounds.jsonl")
    if os.path.exists(os.path.join(where, "diverged")):
        return dict(score(rounds_file, horizon) if os.path.exists(rounds_file) else {"best": 0.0, "rounds_to_target": None},
                    diverged=True)
    if not os.path.exists(os.path.join(where, "done")):
        cmd = [binary, TABLE, "--only", row, "--quiet", "--set", f"train.lr={lr}", "--set",
               f"federation.rounds={horizon}", "--output-dir", where]
        with open(os.path.join(out, f"{row}.log"), "a") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            code = subprocess.run(cmd, stdout=log, stderr=log, cwd=ROOT).returncode
        open(os.path.join(where, "done" if code == 0 else "diverged"), "w").close()
        print(f"{time.strftime('%H:%M:%S')} {row} lr={lr}: exit {code}", flush=True)
        return run(binary, out, row, lr, horizon)
    return score(rounds_file, horizon)


def rank(result):
    if result.get("diverged"):
        return (2, -result["best"])
    if result["rounds_to_target"] is not None:
        return (0, result["rounds_to_target"])
    return (1, -result["best"])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, out, only = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    for row, horizon, first in ROWS:
        if only and row not in only:
            continue
        results = {lr: run(binary, out, row, lr, horizon) for lr in first}
        while True:
            winner = min(results, key=lambda lr: rank(results[lr]))
            tried, i = sorted(results), GRID.index(winner)
            step = -1 if winner == tried[0] else 1 if winner == tried[-1] else 0
            if step == 0 or not 0 <= i + step < len(GRID) or GRID[i + step] in results:
                break
            results[GRID[i + step]] = run(binary, out, row, GRID[i + step], horizon)
        line = {"row": row, "horizon": horizon, "winner": winner, "results": {str(k): v for k, v in sorted(results.items())}}
        with open(os.path.join(out, "summary.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
