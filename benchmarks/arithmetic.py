"""A second task with a checkable answer for benchmarks/QUALITY.md: GSM8K-style arithmetic word
problems of two or three steps, made from a fixed seed (no package on this machine's index ships
GSM8K itself), each with its whole-number answer.

    python benchmarks/arithmetic.py -o arithmetic.jsonl [--count 100] [--seed 2026]
    moa eval exact --questions arithmetic.jsonl --max-tokens 128 --preset local-1.5b -o a15.jsonl ...

Each line is ``{"id", "question", "answer"}``; the answer is read by ``langchain_moa.answers`` as for
any number (a stated "Answer: N" first).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

INSTRUCTION = "Work it out in one or two short sentences, then end with the number as 'Answer: N'."
"""Reasoning first: said answer-first, the 1.5B model scored 2-3% (the floor, where nothing compares)."""

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Imani", "Jonas"]
THINGS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "stamps", "shells"]

Problem = Callable[[random.Random, str, str], tuple[str, int]]


def _buy_then_give(r: random.Random, name: str, thing: str) -> tuple[str, int]:
    start, bags, per_bag = r.randint(5, 40), r.randint(2, 6), r.randint(3, 12)
    given = r.randint(1, start)
    text = (f"{name} has {start} {thing}. {name} buys {bags} bags with {per_bag} {thing} in each, "
            f"then gives away {given} {thing}. How many {thing} does {name} have now?")  # fmt: skip
    return text, start + bags * per_bag - given


def _share_equally(r: random.Random, name: str, thing: str) -> tuple[str, int]:
    friends, each, left = r.randint(2, 8), r.randint(3, 15), r.randint(0, 1)
    total = friends * each + left
    found = r.randint(1, total - 1)
    text = (f"{name} has {total - found} {thing} and finds {found} more. {name} shares them equally among "
            f"{friends} friends and keeps the {left} left over. How many {thing} does each friend get?")  # fmt: skip
    return text, each


def _price_and_change(r: random.Random, name: str, thing: str) -> tuple[str, int]:
    count, price = r.randint(2, 9), r.randint(2, 15)
    paid = (count * price // 10 + 1 + r.randint(0, 3)) * 10
    text = (f"{name} buys {count} {thing} at {price} dollars each and pays with {paid} dollars. "
            f"How many dollars of change does {name} get?")  # fmt: skip
    return text, paid - count * price


def _weekly_total(r: random.Random, name: str, thing: str) -> tuple[str, int]:
    weekday, weekend, weeks = r.randint(2, 12), r.randint(5, 25), r.randint(2, 5)
    text = (f"{name} collects {weekday} {thing} on each weekday and {weekend} {thing} on each day of the "
            f"weekend. How many {thing} does {name} collect in {weeks} weeks?")  # fmt: skip
    return text, weeks * (5 * weekday + 2 * weekend)


def _twice_as_many(r: random.Random, name: str, thing: str) -> tuple[str, int]:
    other = r.choice([n for n in NAMES if n != name])
    base, factor, fewer = r.randint(4, 30), r.randint(2, 4), r.randint(1, 10)
    text = (f"{other} has {base} {thing}. {name} has {factor} times as many {thing} as {other}, minus "
            f"{fewer}. How many {thing} do {name} and {other} have together?")  # fmt: skip
    return text, base + factor * base - fewer


PROBLEMS: list[Problem] = [_buy_then_give, _share_equally, _price_and_change, _weekly_total, _twice_as_many]


def problems(count: int, seed: int) -> list[dict[str, object]]:
    """``count`` problems, the same for the same seed: the kinds in turn, names and numbers drawn."""
    r = random.Random(seed)
    rows = []
    for number in range(count):
        text, answer = PROBLEMS[number % len(PROBLEMS)](r, r.choice(NAMES), r.choice(THINGS))
        rows.append({"id": f"arith-{number + 1}", "question": f"{text} {INSTRUCTION}", "answer": answer})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rows = problems(args.count, args.seed)
    args.output.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{len(rows)} problems -> {args.output}")


if __name__ == "__main__":
    main()
