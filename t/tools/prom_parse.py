#!/usr/bin/python3
"""Parses Prometheus text exposition format (stdin) with prometheus_client's
own parser (Debian's python3-prometheus-client) and prints it as JSON:
{"families": {name: {"type": ..., "samples": [[name, labels, value], ...]}}}.
Exit status 1 with the parser's error on stderr when the text does not parse.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    out = {}
    try:
        for fam in text_string_to_metric_families(text):
            entry = out.setdefault(fam.name, {"type": fam.type, "samples": []})
            for s in fam.samples:
                entry["samples"].append([s.name, s.labels, s.value])
    except Exception as e:  # the parser raises ValueError and friends
        print("parse error: %s" % e, file=sys.stderr)
        return 1
    json.dump({"families": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
