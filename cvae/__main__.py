"""Command line: `python -m cvae {info,data,synth,train,evaluate,ablate,sample,search,bench,book,submission}`; see
each `--help`. The parser and the commands live in `cvae.cli`."""

from __future__ import annotations

import sys

from cvae.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
