"""Write a benchmark's markdown table to benchmarks/results/ (shared by the bench scripts)."""

from __future__ import annotations

import os


def write_table(name: str, title: str, preamble: str, columns, rows, notes=()) -> str:
    """Write ``results/<name>.md`` with a title, a preamble, the table and warnings; print notes.

    Returns the path written.
    """
    folder = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.md")
    with open(path, "w") as f:
        f.write(f"# {title}\n\n{preamble}\n\n")
        f.write("| " + " | ".join(columns) + " |\n")
        f.write("|" + "---|" * len(columns) + "\n")
        for row in rows:
            f.write("| " + " | ".join(row) + " |\n")
        if notes:
            f.write("\nWarnings:\n\n" + "".join(f"- {n}\n" for n in notes))
    for n in notes:
        print("warning:", n)
    print(f"wrote {path}")
    return path
