"""Synthetic SCIM 2.0 users as JSON Lines, for ``gateway import``.

User number ``i`` (1-based) is::

    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
     "userName": "user0000042", "externalId": "ext-0000042",
     "name": {"givenName": "Given42", "familyName": "Family42"},
     "emails": [{"value": "user0000042@example.com", "type": "work", "primary": true}],
     "active": true}

No password (hashing would dominate the load). The numbers are zero-padded to
seven digits, so ``userName sw "user00012"`` selects users 1200-1299.

    python bench/generate_users.py --users 20000 --out users.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time

WIDTH = 7
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def user_name(i: int) -> str:
    return f"user{i:0{WIDTH}d}"


def external_id(i: int) -> str:
    return f"ext-{i:0{WIDTH}d}"


def email(i: int) -> str:
    return f"{user_name(i)}@example.com"


def line(i: int) -> str:
    n = f"{i:0{WIDTH}d}"
    # written by hand rather than with a JSON library: ~5x faster, and the values need no escaping
    return (f'{{"schemas":["{SCHEMA}"],"userName":"user{n}","externalId":"ext-{n}",'
            f'"name":{{"givenName":"Given{i}","familyName":"Family{i}"}},'
            f'"emails":[{{"value":"user{n}@example.com","type":"work","primary":true}}],'
            f'"active":true}}\n')


def generate(path: str, count: int, start: int = 1) -> int:
    """Write users ``start`` .. ``start + count - 1`` to ``path``; returns bytes written."""
    if start + count - 1 >= 10 ** WIDTH:
        raise ValueError(f"at most {10 ** WIDTH - 1} users")
    size = 0
    with open(path, "w", encoding="ascii", buffering=1 << 20) as out:
        chunk = []
        for i in range(start, start + count):
            chunk.append(line(i))
            if len(chunk) == 10_000:
                text = "".join(chunk)
                size += len(text)
                out.write(text)
                chunk = []
        if chunk:
            text = "".join(chunk)
            size += len(text)
            out.write(text)
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--start", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    size = generate(args.out, args.users, args.start)
    print(f"wrote {args.users} users ({size / 1e6:.1f} MB) to {args.out} "
          f"in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
