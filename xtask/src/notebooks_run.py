"""Executes one evcxr notebook headless and fails on any error in its outputs.

evcxr reports a panic or a failed assert in a cell on stderr and lets the run go on (the cell still
counts as successful), so errors are found by reading the outputs. Usage: run.py SRC DST
"""
import os
import sys

import nbformat
from nbclient import NotebookClient

src, dst = sys.argv[1], sys.argv[2]
nb = nbformat.read(src, as_version=4)
client = NotebookClient(
    nb,
    kernel_name="rust",
    timeout=int(os.environ.get("EMSL_NOTEBOOK_TIMEOUT", "1800")),
    resources={"metadata": {"path": os.path.dirname(os.path.abspath(src))}},
)
failure = None
try:
    client.execute()
except Exception as e:  # a cell error stops nbclient: keep the partial notebook for reading
    failure = f"{type(e).__name__}: {e}"
errors = []
for i, cell in enumerate(nb.cells):
    if cell.cell_type != "code":
        continue
    cell.metadata.pop("execution", None)
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            errors.append(f"cell {i}: {out.ename}: {out.evalue}")
        elif out.output_type == "stream" and out.name == "stderr":
            text = out.text
            if "panicked" in text or "error" in text.lower():
                errors.append(f"cell {i}: {text.strip()[:2000]}")
nbformat.write(nb, dst)
if failure and not errors:
    errors.append(failure)
if errors:
    print(f"{src}: {len(errors)} failing cell output(s):", file=sys.stderr)
    for e in errors:
        print("  " + e, file=sys.stderr)
    sys.exit(1)
