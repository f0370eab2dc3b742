"""Every bound the loader enforces, in one place, with the reason for each.

Two kinds of bound live here. Work bounds keep a hostile file from hanging
or exhausting the machine (the loader must answer in well under two
seconds and a couple of hundred MB on any input). Data-plane bounds are
what the reference mesh's Envoy can program: a value the loader accepts
must never be NACKed later by every sidecar.
"""

from __future__ import annotations

#: Bytes read from one file (or stdin). A bigger file is refused before parsing:
#: memory grows with the text (about 10x once parsed), and 100,000 policy
#: documents fit in a quarter of this.
MAX_FILE_BYTES = 32 * 1024 * 1024
#: Documents in one load (all files together). kubectl has no such limit, but
#: nothing real comes near it and each document costs memory until the load ends.
MAX_DOCUMENTS = 100_000
#: Nesting of lists and mappings in one document. Policy documents nest about
#: eight deep; the bound keeps every walk over a document shallow.
MAX_DEPTH = 64
#: Values in one document counting every alias as a copy of what it refers to
#: (go-yaml refuses "excessive aliasing" for the same reason): a few KB of
#: aliases can stand for billions of values.
MAX_NODES = 50_000
#: Characters of a scalar shown in an error message.
PREVIEW_CHARS = 60
#: Digits of an integer scalar (Python refuses to convert more than 4300).
MAX_INT_DIGITS = 30
#: Problems kept (and printed) per load; the total is still counted and said.
MAX_PROBLEMS_KEPT = 1000
MAX_PROBLEMS_SHOWN = 20
#: Problems after which reading stops: 200,000 broken documents are one
#: mistake repeated, and counting them all would take seconds.
MAX_PROBLEMS_COUNTED = 10_000

#: Envoy's integer fields are uint32 (weights, outlier counts); weighted
#: clusters also refuse a sum of weights above this.
UINT32_MAX = 2**32 - 1
#: RE2 program size the reference mesh sets on every regex it programs
#: (refmesh/xds/matches.py; Envoy's default is 100, which a 95-character path
#: already exceeds). The loader refuses a regex whose estimated size is larger.
RE2_MAX_PROGRAM_SIZE = 4096
#: Length of a pattern or exact header value: Envoy refuses request headers
#: over 60 KiB, so a longer value could never match.
MAX_MATCH_CHARS = 4096
