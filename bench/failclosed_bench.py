"""What the fail-closed checks of ``deid`` cost per file, beside the whole file's work.

For each sample file (the generator's corpus: CT, MR, SR, US, SC, RT, every encoding), time
in this process, median of several passes:

- the strict grammar gate (``grammar.read_header``, plus the check after Pixel Data),
- identity gathering (``identity.gather``),
- the post-write check (``postcheck.check_file`` on the written output),
- the whole ``Worker.process`` of the file (gate, engine, write, post-write check).

Printed as microseconds per file and as the checks' share of the whole. Run:

    python bench/failclosed_bench.py [--patients 3] [--passes 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pacsguard.core.io import InputItem
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, grammar, postcheck
from pacsguard.deid.identity import gather
from pacsguard.deid.pipeline import Worker
from pacsguard.deid.policy import load_policy
from pacsguard.sample import generate


def _median_us(fn: object, passes: int) -> float:
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pacsguard-failclosed-"))
    generate(work / "s", seed=11, patients=args.patients)
    files = sorted((work / "s" / "dicom").rglob("*.dcm"))
    config = DeidConfig(burned_in="keep", jobs=1)
    worker = Worker(
        ProjectKey(bytes(32)).material, config, load_policy(None), work / "o", work / "q"
    )
    (work / "q").mkdir(parents=True)
    rows = {"gate": [], "identity": [], "postcheck": [], "whole": []}
    for path in files:
        size = path.stat().st_size

        def gate(path: Path = path, size: int = size) -> grammar.Header:
            with path.open("rb") as handle:
                return grammar.read_header(handle, size)[0]

        header = gate()
        stat = path.stat()
        item = InputItem(str(path), path, None, stat.st_size, stat.st_mtime_ns)
        result = worker.process(item)
        if result.tmp is None:
            continue  # quarantined: nothing written to check
        identity = gather(header)
        rows["gate"].append(_median_us(gate, args.passes))
        rows["identity"].append(_median_us(lambda h=header: gather(h), args.passes))
        rows["postcheck"].append(
            _median_us(
                lambda t=result.tmp, i=identity: postcheck.check_file(Path(t), i), args.passes
            )
        )
        rows["whole"].append(_median_us(lambda i=item: worker.process(i), args.passes))
    summary = {name: statistics.median(values) for name, values in rows.items() if values}
    checks = summary["gate"] + summary["identity"] + summary["postcheck"]
    print(f"{len(rows['whole'])} files, median microseconds per file (this process):")
    for name, value in summary.items():
        print(f"  {name:10s} {value:9.0f} us")
    print(f"  checks' share of the whole file: {checks / summary['whole']:.1%}")
    if args.json:
        args.json.write_text(json.dumps({"files": len(rows["whole"]), "us": summary}, indent=2))


if __name__ == "__main__":
    main()
