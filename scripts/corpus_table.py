#!/usr/bin/env python3
"""Print the command corpus's per-group table (tests/corpus/commands.yaml) as markdown for the
README, after running every command end to end exactly as tests/test_corpus.py does.

    python scripts/corpus_table.py           # the table
    python scripts/corpus_table.py --list    # ... and every entry not understood as expected
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from test_corpus import corpus_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true",
                        help="also list the entries that were not understood as expected")
    args = parser.parse_args(argv)
    report = corpus_report()
    print(report.markdown())
    counts = report.counts()
    print(f"\n{counts['understood']} of {counts['total']} commands understood as expected; "
          f"{counts['wrong_goal']} wrong goals.")
    if args.list:
        for verdict in ("wrong_goal", "crash", "wrong_no_goal", "refused_instead",
                        "refused_named"):
            found = report.failures((verdict,))
            if found:
                print(f"\n{verdict} ({len(found)}):\n```\n{report.listing(found)}\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
