"""Test documents built with fpdf2 (and pypdf for forms and encryption).

Each builder returns PDF bytes. The layouts differ on purpose, to exercise the offline
extractor: ``Label: value`` lines, labels above their values, table-like rows, and
different date and number formats.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from fpdf import FPDF


def _pdf() -> FPDF:
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=11)
    return pdf


def _line(pdf: FPDF, text: str = "") -> None:
    if text:
        pdf.cell(text=text, new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.ln(6)


def _row(pdf: FPDF, cells: Sequence[str], width: float = 45) -> None:
    for cell in cells:
        pdf.cell(w=width, text=cell)
    pdf.ln()


def _bytes(pdf: FPDF) -> bytes:
    return bytes(pdf.output())


def invoice_colon(number: str = "INV-2026-0042", date: str = "12/03/2026",
                  total: str = "EUR 2,125.00", supplier: str = "ACME Supplies GmbH") -> bytes:
    """An invoice with ``Label: value`` lines and a line-item table."""
    pdf = _pdf()
    pdf.add_page()
    for text in ("INVOICE", "", f"Invoice Number: {number}", f"Issue Date: {date}",
                 f"Supplier: {supplier}", "Currency: EUR", ""):
        _line(pdf, text)
    for row in (("Description", "Qty", "Unit price", "Amount"),
                ("Widgets", "10", "12.50", "125.00"), ("Gadgets", "2", "1,000.00", "2,000.00")):
        _row(pdf, row)
    _line(pdf)
    _line(pdf, f"Total Amount: {total}")
    return _bytes(pdf)


def invoice_above() -> bytes:
    """Labels on one line, their values on the next (two columns), US-style numbers."""
    pdf = _pdf()
    pdf.add_page()
    _line(pdf, "Initech LLC - Invoice")
    _line(pdf)
    _row(pdf, ("Invoice No.", "Date of issue"), 80)
    _row(pdf, ("A-1007", "March 12, 2026"), 80)
    _line(pdf)
    _row(pdf, ("Vendor", "Amount due"), 80)
    _row(pdf, ("Initech LLC", "$ 1,234.56"), 80)
    return _bytes(pdf)


def invoice_table() -> bytes:
    """Header fields laid out as a table row; European number and date formats."""
    pdf = _pdf()
    pdf.add_page()
    _line(pdf, "RECHNUNG / INVOICE")
    _line(pdf)
    _row(pdf, ("Invoice #", "Invoice date", "Total", "Currency"))
    _row(pdf, ("2026/77", "05.01.2026", "1.234,56", "EUR"))
    _line(pdf)
    _line(pdf, "Seller: Müller Werkzeuge AG")
    return _bytes(pdf)


def receipt(store: str = "Corner Cafe", total: str = "8.40") -> bytes:
    """A till receipt."""
    pdf = _pdf()
    pdf.add_page()
    for text in (f"{store}", "RECEIPT", "Thank you for your purchase", "Cash payment",
                 "Change given: 1.60", f"Paid: {total}"):
        _line(pdf, text)
    return _bytes(pdf)


def _page(pdf: FPDF, lines: Sequence[str]) -> None:
    pdf.add_page()
    for text in lines:
        _line(pdf, text)


def three_documents() -> bytes:
    """Six pages: a 2-page invoice, a 2-page bank statement, a 2-page contract."""
    pdf = _pdf()
    _page(pdf, ["INVOICE", "Invoice Number: INV-1", "Invoice date: 2026-01-05",
                "Bill to: Globex", "Page 1 of 2"])
    _page(pdf, ["Line items continued", "Widgets 10 x 12.50", "Total due: 125.00",
                "Page 2 of 2"])
    _page(pdf, ["BANK STATEMENT", "Account number: 0042-1234", "Statement period: January",
                "Opening balance: 1,000.00"])
    _page(pdf, ["Transactions continued", "Closing balance: 1,250.00"])
    _page(pdf, ["SERVICE CONTRACT", "This agreement is made between the parties",
                "Term: 12 months"])
    _page(pdf, ["Signatures", "Signed by both parties", "Governing law clause"])
    return _bytes(pdf)


def invoices_by_number() -> bytes:
    """Five pages: invoice A (pages 1-2), invoice B (3), invoice C (4-5)."""
    pdf = _pdf()
    _page(pdf, ["INVOICE", "Invoice Number: A-100", "Total: 10.00"])
    _page(pdf, ["continued", "more line items"])
    _page(pdf, ["INVOICE", "Invoice Number: B-200", "Total: 20.00"])
    _page(pdf, ["INVOICE", "Invoice Number: C-300", "Total: 30.00"])
    _page(pdf, ["continued", "terms and conditions"])
    return _bytes(pdf)


def pages(count: int, prefix: str = "page") -> bytes:
    """``count`` pages saying ``<prefix> <n>``."""
    pdf = _pdf()
    for n in range(1, count + 1):
        _page(pdf, [f"{prefix} {n}"])
    return _bytes(pdf)


def png(width: int = 4, height: int = 3) -> bytes:
    """A small red RGB PNG, written by hand (no imaging library)."""
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
              (b"IDAT", zlib.compress(raw)), (b"IEND", b"")]
    body = b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                    for k, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def encrypted(user_password: str = "secret") -> bytes:
    """A one-page PDF that needs ``user_password`` to open."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pages(1))))
    writer.encrypt(user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def form(fields: Sequence[tuple[str, str]]) -> bytes:
    """A one-page AcroForm with ``(name, kind)`` fields, kind ``text`` or ``checkbox``."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (
        ArrayObject,
        BooleanObject,
        DictionaryObject,
        FloatObject,
        NameObject,
        NumberObject,
        StreamObject,
        TextStringObject,
    )

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pages(1, "Application form"))))
    page = writer.pages[0]
    refs = ArrayObject()
    for i, (name, kind) in enumerate(fields):
        top = 740 - 36 * i
        annot = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/T"): TextStringObject(name), NameObject("/F"): NumberObject(4),
            NameObject("/Rect"): ArrayObject([FloatObject(200), FloatObject(top),
                                              FloatObject(400 if kind == "text" else 214),
                                              FloatObject(top + 14)]),
            NameObject("/DA"): TextStringObject("/Helv 10 Tf 0 g"),
            NameObject("/FT"): NameObject("/Tx" if kind == "text" else "/Btn"),
        })
        if kind == "checkbox":
            on, off = StreamObject(), StreamObject()
            annot[NameObject("/AP")] = DictionaryObject({NameObject("/N"): DictionaryObject({
                NameObject("/Yes"): writer._add_object(on),
                NameObject("/Off"): writer._add_object(off)})})
            annot[NameObject("/V")] = NameObject("/Off")
            annot[NameObject("/AS")] = NameObject("/Off")
        ref = writer._add_object(annot)
        refs.append(ref)
    page[NameObject("/Annots")] = refs
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                             NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({
        NameObject("/Fields"): refs, NameObject("/NeedAppearances"): BooleanObject(True),
        NameObject("/DA"): TextStringObject("/Helv 10 Tf 0 g"),
        NameObject("/DR"): DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/Helv"): writer._add_object(font)})})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
