"""`alls explain`: a diagnostic code's What / Why / Example / Fix, or the list of every code."""

from __future__ import annotations

import alls
from alls.commands import common


def run(args) -> int:
    if args.code is None:
        for doc in alls.CODES.values():
            print(f"{doc.code}  {str(doc.severity):8} {doc.title}")
        return common.EXIT_OK
    code = args.code.upper()
    if code not in alls.CODES:
        digits = code[:3] + code[3:].translate(str.maketrans("OIL", "011"))  # a letter typed for a digit
        hint = f"did you mean `{digits}`?" if digits in alls.CODES else alls.diagnostics.suggestion(code, alls.CODES)
        raise alls.AllsError.of("ALS009", f"unknown code `{args.code}`",
                                (hint + " " if hint else "") + "run `alls explain` to list every code")
    print(alls.explain(code), end="")
    return common.EXIT_OK
