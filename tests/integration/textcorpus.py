# SPDX-License-Identifier: MIT
"""textcorpus: real English text from Debian packages, split into records by source, for the
CoLoR-Filter tests and bench: WordNet glosses (wordnet-base: nouns, verbs, adjectives) and
fortunes (fortunes, fortunes-min). Deterministic for a seed."""

import os
import random

WORDNET = "/usr/share/wordnet"
FORTUNES = "/usr/share/games/fortunes"


def wordnet(part):
    out = []
    with open(os.path.join(WORDNET, "data." + part), encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            i = line.find("| ")
            if i >= 0:
                out.append(line[i + 2:].strip())
    return out


def fortunes():
    out = []
    for name in sorted(os.listdir(FORTUNES)):
        p = os.path.join(FORTUNES, name)
        if "." in name or not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            for chunk in f.read().split("\n%\n"):
                t = " ".join(chunk.split())
                if 20 <= len(t) <= 2000:
                    out.append(t)
    return out


def available():
    return os.path.isfile(os.path.join(WORDNET, "data.noun")) and os.path.isdir(FORTUNES)


def sources(seed=1):
    """{source: [texts]} shuffled with seed; duplicates within a source dropped."""
    rng = random.Random(seed)
    out = {"noun": wordnet("noun"), "verb": wordnet("verb"), "adj": wordnet("adj"),
           "fortune": fortunes()}
    for k, v in out.items():
        v = sorted(set(v))
        rng.shuffle(v)
        out[k] = v
    return out
