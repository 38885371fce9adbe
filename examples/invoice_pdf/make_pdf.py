"""Generate ``invoice.pdf`` for the invoice_pdf example (needs fpdf2: `pip install fpdf2`).

The generated file is committed, so the example runs without fpdf2; run this script only
to change the invoice:

    python examples/invoice_pdf/make_pdf.py
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent
LINES = [
    ("Steel brackets, 40 mm", "100", "4.25", "425.00"),
    ("Hex bolts M8 (box of 200)", "10", "38.00", "380.00"),
    ("Assembly service, hours", "12", "110.00", "1,320.00"),
]


def build() -> bytes:
    """The invoice as PDF bytes."""
    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 3, 12, tzinfo=UTC))  # same bytes on every run
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(text="ACME Supplies GmbH", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    for line in ("Industriestrasse 7, 70565 Stuttgart", "VAT ID: DE123456789"):
        pdf.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("helvetica", "B", 14)
    pdf.cell(text="INVOICE", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    pdf.ln(4)
    for line in ("Invoice Number: INV-2026-0042", "Issue Date: March 12, 2026",
                 "Supplier: ACME Supplies GmbH", "Currency: EUR"):
        pdf.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.cell(text="Bill to", new_x="LMARGIN", new_y="NEXT")
    for line in ("Globex Corporation", "12 Main Street, Springfield"):
        pdf.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    widths = (80, 25, 35, 35)
    for row in (("Description", "Qty", "Unit price", "Amount"), *LINES):
        for width, cell in zip(widths, row, strict=True):
            pdf.cell(w=width, text=cell)
        pdf.ln()
    pdf.ln(6)
    for label, value in (("Subtotal", "2,125.00"), ("VAT 0% (reverse charge)", "0.00"),
                         ("Total Amount", "EUR 2,125.00")):
        pdf.cell(w=140, text=label)
        pdf.cell(w=35, text=value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.cell(text="Payment due within 30 days. Thank you for your business.")
    return bytes(pdf.output())


if __name__ == "__main__":
    target = HERE / "invoice.pdf"
    target.write_bytes(build())
    print(f"wrote {target}")
